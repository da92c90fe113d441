// The paper's claims next to a sweep's numbers: for each claim the results can speak to,
// what the paper says, what was measured (mean ± std over seeds and tasks) and whether the
// two agree, disagree or cannot be told apart within the seed-to-seed spread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "results/result_row.h"

namespace difffit {

// Mean and sample standard deviation of one numeric column over some rows (NaNs skipped).
struct Summary {
  int n = 0;
  double mean = 0.0, std = 0.0;
};
Summary summarize(const std::vector<ResultRow>& rows, const std::string& column);

// The method of a row: its "method" axis label when the sweep has one, else the run's method.
std::string method_of(const ResultRow& row);

// Markdown: one section per claim the rows can test (methods, gamma placement, learning
// rate ratio), each with its table of numbers and a verdict. Rows are those of a results file.
// With `curves` (the results file's /curves), a section on whether each task and method's
// learning curve had plateaued (results/curve_findings.h).
// With `attributes` (the results file's: runs_planned, runs_done, jobs, wall_seconds, finished),
// a paragraph on how far the sweep came, when it finished and its wall time. A "scale" grid
// gets its own section (results/scale_findings.h), its chart linked as `scale_chart`.
std::string findings_markdown(const std::vector<ResultRow>& rows, const std::vector<ResultRow>& curves = {},
                              const std::map<std::string, std::string>& attributes = {},
                              const std::string& scale_chart = "");

// One sentence for a terminal: what full fine-tuning, DiffFit and BitFit (when present) reached
// (FID, class accuracy), with DiffFit's share of the parameters and step speed, over the rows
// that compare methods (as the page's Methods section). "" when DiffFit or full is missing.
std::string findings_line(const std::vector<ResultRow>& rows);

}  // namespace difffit
