// One row of a sweep's results: a finished run as it appears in one grid of the sweep
// (a run shared by two grids appears once per grid). A tidy, long-format record:
// text columns (grid, run_id, name, each axis label, method, metric, ...) and numeric
// columns (fid, final_loss, steps_per_second, trainable_params, ...).
#pragma once

#include <map>
#include <string>

namespace difffit {

struct ResultRow {
  std::map<std::string, std::string> text;  // column -> value ("" when a row lacks it)
  std::map<std::string, double> numbers;    // column -> value (NaN when a row lacks it)
};

}  // namespace difffit
