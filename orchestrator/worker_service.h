// A worker rank of a sweep job: asks for work, runs what it is given, reports, and
// sends heartbeats from a side thread while a run is busy (training, sampling or
// scoring alike), so the coordinator can tell a slow run from a hung rank.
#pragma once

#include "orchestrator/message_transport.h"
#include "orchestrator/sweep_config.h"

namespace difffit {

// Returns when the coordinator says exit.
void serve_as_worker(const SweepConfig& config, MessageTransport& transport);

}  // namespace difffit
