// Rank 0 of a sweep job: hands runs to worker ranks as they free up, journals every
// outcome, watches heartbeats, and on a stop signal lets busy workers save their
// runs before the job exits. One crashing run never ends the sweep.
#pragma once

#include <vector>

#include "orchestrator/message_transport.h"
#include "orchestrator/sweep_ledger.h"
#include "orchestrator/worker_service.h"

namespace difffit {

// Returns the sweep's exit code (see SweepLedger::finish). A rank that stopped
// answering cannot join MPI_Finalize: after recording everything, the job is aborted.
// `workers`: the ranks to hand runs to (every worker rank, or the run groups' leaders).
int coordinate_sweep(const SweepConfig& config, SweepLedger& ledger, MessageTransport& transport,
                     std::vector<int> workers);

// The same, in one process: runs execute here, one after another.
int run_sweep_in_process(const SweepConfig& config, SweepLedger& ledger, const RunExecutor& execute = real_runs());

}  // namespace difffit
