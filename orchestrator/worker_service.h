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

// What a worker does with an assigned run.
using RunExecutor =
    std::function<RunReport(const RunRequest&, const std::function<void(int64_t)>& on_step, const DataParallel& dp)>;
RunExecutor real_runs();
// Answers at once with a done report and made-up metrics, touching no files: a sweep of
// such runs measures the coordinator alone (`difffit bench sweep --simulate`).
RunExecutor simulated_runs();

// A run group as one of its ranks sees it: `comm` carries the runs' collectives (MPI, or
// NCCL on CUDA); `check` is a second MPI communicator over the same ranks on which they
// agree, after each run, that every one of them came back from it. A rank that failed
// alone would leave the others waiting in a collective for ever, so when they do not all
// come back within the heartbeat timeout the job is ended (a rerun resumes the run).
struct RunGroup {
  Communicator* comm = nullptr;
  Communicator* check = nullptr;
  std::vector<int> members;  // the leader's view: the other ranks of its group (world ranks)
};

// A worker rank, or the leader of a run group: asks the coordinator for work, hands each
// assignment (and the final exit) on to its group's members, runs it with them, and
// reports. Returns when the coordinator says exit.
void serve_as_worker(const SweepConfig& config, MessageTransport& transport, const RunExecutor& execute = real_runs(),
                     const RunGroup& group = {});

// Another rank of a run group: runs what its leader hands on, with the group, until exit.
void serve_as_group_member(const SweepConfig& config, MessageTransport& transport, const RunExecutor& execute,
                           const RunGroup& group);

}  // namespace difffit
