// The text of `difffit sweep plan` (the runs a sweep file expands to) and `difffit sweep
// status` (each run's state, folded from the journal).
#pragma once

#include <string>

#include "orchestrator/run_states.h"
#include "orchestrator/sweep_config.h"
#include "orchestrator/sweep_plan.h"

namespace difffit {

std::string sweep_plan_listing(const SweepConfig& config, const SweepPlan& plan);
// Ends with an estimate of the time left: the runs not done at the median time of the last
// job's finished runs (of all jobs' when it finished none), as many at a time as it ran.
std::string sweep_status_listing(const SweepConfig& config, const SweepPlan& plan, const RunStates& states,
                                 const std::string& journal_path, const SweepHistory& history);
// "left: 91 runs; a run took 8.2 min (median of the last job's 12), 2 at a time: about
// 6.2 h"; "" when nothing is left or no run has finished.
std::string time_left_line(const SweepHistory& history, size_t runs_left);

}  // namespace difffit
