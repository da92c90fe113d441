#include "results/learning_curves.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "results/result_columns.h"

namespace difffit {

std::vector<std::string> distinct_values(const std::vector<ResultRow>& rows, const std::string& column) {
  std::vector<std::string> values;
  for (const ResultRow& row : rows) {
    const std::string v = text_value(row, column);
    if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
  }
  return values;
}

std::vector<LineSeries> curve_series(const std::vector<ResultRow>& curves, const std::string& series_key,
                                     const std::string& value) {
  std::vector<LineSeries> series;
  for (const std::string& name : distinct_values(curves, series_key)) {
    std::map<double, std::vector<double>> by_step;
    for (const ResultRow& row : curves) {
      if (text_value(row, series_key) != name) continue;
      const double step = number_value(row, "step"), y = number_value(row, value);
      if (std::isfinite(step) && std::isfinite(y)) by_step[step].push_back(y);
    }
    if (by_step.empty()) continue;
    LineSeries line;
    line.name = name.empty() ? "(none)" : name;
    for (const auto& [step, ys] : by_step) {
      double sum = 0;
      for (double y : ys) sum += y;
      line.x.push_back(step);
      line.y.push_back(sum / static_cast<double>(ys.size()));
      line.low.push_back(*std::min_element(ys.begin(), ys.end()));
      line.high.push_back(*std::max_element(ys.begin(), ys.end()));
    }
    series.push_back(std::move(line));
  }
  return series;
}

}  // namespace difffit
