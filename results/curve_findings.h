// What the learning curves of a sweep say about its budget: for each task and method, the
// FID at the best point and at the end of the mean-over-seeds curve, and whether training
// had stopped improving (plateaued) by the end.
#pragma once

#include <string>
#include <vector>

#include "results/result_row.h"

namespace difffit {

struct CurveVerdict {
  std::string task, method;
  double best = 0, best_step = 0;  // the lowest point of the mean curve
  double final = 0, final_step = 0;
  double two_thirds = 0;           // the point nearest 2/3 of the last step
  // Plateaued: the final point is within 10% of the best, and within 10% of the point at
  // two thirds of the run (the last third changed it by less than that).
  bool plateaued() const;
};

// One verdict per (grid, task, method and any other axis but the seed) with at least two
// points of `value` (e.g. "fid"); seeds are averaged, grids never mixed.
std::vector<CurveVerdict> curve_verdicts(const std::vector<ResultRow>& curves, const std::string& value = "fid");

// A Markdown section (heading included) with the verdicts' table; "" without curves.
std::string plateau_markdown(const std::vector<ResultRow>& curves);

}  // namespace difffit
