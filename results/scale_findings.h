// The scale question: does DiffFit's gap to full fine-tuning shrink as the source model
// grows? Read from a sweep's grid "scale" (axes size, dataset, method, seed; see
// experiments/mini-scale.yaml): per task and size, each method's FID over seeds and DiffFit's
// gap to full fine-tuning, judged against the seed spread.
#pragma once

#include <string>
#include <vector>

#include "results/result_row.h"

namespace difffit {

struct ScaleGap {
  std::string task, size;
  double params = 0;         // the task's source model's parameters (full fine-tuning's total there)
  double gap = 0;            // mean FID of DiffFit minus mean FID of full fine-tuning
  double spread = 0;         // the gap's seed spread: sqrt(std_difffit^2 + std_full^2)
  double ratio = 0;          // mean FID of DiffFit / mean FID of full fine-tuning
  int difffit_runs = 0, full_runs = 0;
};

// One gap per (task, size) with both DiffFit and full runs, tasks in order of appearance,
// sizes by parameter count.
std::vector<ScaleGap> scale_gaps(const std::vector<ResultRow>& rows);

// A Markdown section (heading included): each method's FID per task and size, the gaps, and
// per task whether the gap shrinks from the smallest to the largest size by more than the
// seed spread; "" without a "scale" grid. `chart` (a file name) is linked when not empty.
std::string scale_markdown(const std::vector<ResultRow>& rows, const std::string& chart = "");

// One sentence for a terminal; "" without gaps at two sizes.
std::string scale_line(const std::vector<ResultRow>& rows);

// The chart: the gap (with its seed spread as a band) against the source model's parameters,
// one line per task; "" without gaps.
std::string scale_gap_svg(const std::vector<ResultRow>& rows);

}  // namespace difffit
