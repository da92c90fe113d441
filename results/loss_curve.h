// Loss curves from run folders (loss.csv: step,loss,mse,vb — written by the trainer).
#pragma once

#include <string>

#include "results/result_plot.h"

namespace difffit {

// The `column` of RUN_DIR/loss.csv against `step`, named after the run folder; with
// smooth > 1, a trailing moving average over that many logged steps.
LineSeries read_loss_curve(const std::string& run_dir, const std::string& column = "loss", int smooth = 1);

}  // namespace difffit
