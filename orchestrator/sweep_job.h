// One rank's part of a sweep job, as `difffit sweep run` runs it once MPI is up: rank 0
// coordinates (or, alone, runs every run itself); the other ranks serve as workers, alone or
// in run groups (ranks_per_run > 1, NCCL over a group whose runs are on CUDA). Any error
// ends the whole job rather than leave ranks waiting.
#pragma once

#include "orchestrator/message_transport.h"
#include "orchestrator/sweep_config.h"

namespace difffit {

struct SweepJobOptions {
  bool retry_failed = false;   // runs that failed max_attempts times get fresh attempts
  bool simulate_runs = false;  // workers answer at once with made-up metrics (coordinator benchmark)
};

// The process's exit code: 0 all done, 5 some runs failed, 128 + signal when stopped,
// kDrainedExitCode (6) when a DRAIN file ended the job with runs pending.
int run_sweep_job(const SweepConfig& config, MessageTransport& transport, const SweepJobOptions& options);

}  // namespace difffit
