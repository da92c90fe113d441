// A worker rank of a sweep job: asks for work, runs what it is given, reports, and
// sends heartbeats from a side thread while a run is busy (training, sampling or
// scoring alike), so the coordinator can tell a slow run from a hung rank.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "orchestrator/message_transport.h"
#include "orchestrator/sweep_config.h"
#include "worker/run/run_request.h"
#include "worker/train/data_parallel.h"

namespace difffit {

// What a worker does with an assigned run: execute_run, or simulate_run for `bench sweep`.
using RunExecutor =
    std::function<RunReport(const RunRequest&, const std::function<void(int64_t)>& on_step, const DataParallel& dp)>;
RunExecutor real_runs();
RunExecutor simulated_runs();

// Answers at once with a done report and made-up metrics, touching no files: a sweep of
// such runs measures the coordinator alone (`difffit bench sweep --simulate`).
RunReport simulate_run(const RunRequest& request);

// A worker rank, or the leader of a run group: asks the coordinator for work, hands each
// assignment (and the final exit) on to the other `members` of its group (world ranks),
// runs it with them over `group`, and reports. Returns when the coordinator says exit.
void serve_as_worker(const SweepConfig& config, MessageTransport& transport, const RunExecutor& execute = real_runs(),
                     Communicator* group = nullptr, const std::vector<int>& members = {});

// Another rank of a run group: runs what its leader hands on, with the group, until exit.
void serve_as_group_member(MessageTransport& transport, const RunExecutor& execute, Communicator& group);

}  // namespace difffit
