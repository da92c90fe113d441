// The text of `difffit sweep plan` (the runs a sweep file expands to) and `difffit sweep
// status` (each run's state, folded from the journal).
#pragma once

#include <string>

#include "orchestrator/run_states.h"
#include "orchestrator/sweep_config.h"
#include "orchestrator/sweep_plan.h"

namespace difffit {

std::string sweep_plan_listing(const SweepConfig& config, const SweepPlan& plan);
std::string sweep_status_listing(const SweepConfig& config, const SweepPlan& plan, const RunStates& states,
                                 const std::string& journal_path);

}  // namespace difffit
