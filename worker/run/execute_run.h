// Runs one planned run inside a sweep worker: everything it throws becomes a report
// (a failed run is a record, not a crash), a stop signal becomes a "stopped" report
// after the run saved its checkpoint.
#pragma once

#include <cstdint>
#include <functional>

#include "worker/run/run_request.h"
#include "worker/train/data_parallel.h"

namespace difffit {

// `dp`: the ranks of a run group that train this run together (every one of them calls
// this; rank 0 of the group writes the run folder and its report is the one that counts).
RunReport execute_run(const RunRequest& request, const std::function<void(int64_t)>& on_step = {},
                      const DataParallel& dp = {});

}  // namespace difffit
