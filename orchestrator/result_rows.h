// The results table of a sweep: one row per (grid, done run), with the run's axis
// labels and every value of its metrics.json.
#pragma once

#include <vector>

#include "orchestrator/run_states.h"
#include "orchestrator/sweep_plan.h"
#include "results/result_row.h"

namespace difffit {

std::vector<ResultRow> result_rows(const SweepPlan& plan, const RunStates& states);
// The rows of one done run (one per grid it belongs to).
std::vector<ResultRow> result_rows_of(const SweepPlan& plan, size_t index, const RunProgress& progress);

// The learning-curve points of one done run (metrics.json's "curve"): one row per (grid,
// point) with the run's text columns and step, seconds and each metric.
std::vector<ResultRow> curve_rows_of(const SweepPlan& plan, size_t index, const RunProgress& progress);

}  // namespace difffit
