// Loss curves from run folders (loss.csv: step,loss,mse,vb — written by the trainer).
#pragma once

#include <string>
#include <vector>

#include "results/result_plot.h"
#include "results/result_row.h"

namespace difffit {

// The `column` of RUN_DIR/loss.csv against `step`, named after the run folder; with
// smooth > 1, a trailing moving average over that many logged steps.
LineSeries read_loss_curve(const std::string& run_dir, const std::string& column = "loss", int smooth = 1);

// The loss curves of the runs of a results file (their run_dir column), each named by its
// `row_key` label, and `col_key` label where it has one ("difffit / food").
std::vector<LineSeries> read_loss_curves(const std::vector<ResultRow>& runs, const std::string& row_key,
                                         const std::string& col_key, const std::string& column, int smooth);

}  // namespace difffit
