// Learning curves of a sweep's runs (the /curves table of its results file): one line per
// value of a text column (e.g. method) with the mean over the runs that share it (seeds)
// at each step, and a band from their minimum to their maximum.
#pragma once

#include <string>
#include <vector>

#include "results/result_plot.h"
#include "results/result_row.h"

namespace difffit {

// `curves` already selected (e.g. one task of one grid). A point counts where `value` is
// finite; steps where only some runs have a point average those.
std::vector<LineSeries> curve_series(const std::vector<ResultRow>& curves, const std::string& series_key,
                                     const std::string& value);

// The distinct values of a text column among rows, in first-seen order.
std::vector<std::string> distinct_values(const std::vector<ResultRow>& rows, const std::string& column);

}  // namespace difffit
