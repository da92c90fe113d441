// Runs one planned run inside a sweep worker: everything it throws becomes a report
// (a failed run is a record, not a crash), a stop signal becomes a "stopped" report
// after the run saved its checkpoint.
#pragma once

#include <cstdint>
#include <functional>

#include "worker/run/run_request.h"

namespace difffit {

RunReport execute_run(const RunRequest& request, const std::function<void(int64_t)>& on_step = {});

}  // namespace difffit
