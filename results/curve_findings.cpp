#include "results/curve_findings.h"

#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "results/learning_curves.h"
#include "results/result_columns.h"

namespace difffit {

bool CurveVerdict::plateaued() const { return final <= 1.1 * best && final >= two_thirds / 1.1; }

namespace {

// What tells a run's curve from another's in one grid and task, seeds aside: its other axis
// labels (the method, and e.g. the learning rate of a grid that varies it).
const std::set<std::string> kNotSeries = {"grid", "run_id", "name", "run_dir", "dataset", "seed"};

std::string series_label(const ResultRow& row) {
  std::string label;
  for (const auto& [column, value] : row.text)
    if (!kNotSeries.count(column) && !value.empty()) label += (label.empty() ? "" : " ") + value;
  return label;
}

}  // namespace

std::vector<CurveVerdict> curve_verdicts(const std::vector<ResultRow>& curves, const std::string& value) {
  std::vector<CurveVerdict> out;
  for (const std::string& grid : distinct_values(curves, "grid")) {
    for (const std::string& task : distinct_values(curves, "dataset")) {
      std::vector<ResultRow> panel;
      for (const ResultRow& row : curves) {
        if (text_value(row, "grid") != grid || text_value(row, "dataset") != task) continue;
        panel.push_back(row);
        panel.back().text["series"] = series_label(row);
      }
      for (const LineSeries& line : curve_series(panel, "series", value)) {
        if (line.x.size() < 2) continue;
        CurveVerdict v;
        v.task = task.empty() ? "(" + grid + ")" : task;
        v.method = line.name;
        v.final = line.y.back();
        v.final_step = line.x.back();
        v.best = line.y[0], v.best_step = line.x[0];
        for (size_t i = 1; i < line.y.size(); ++i)
          if (line.y[i] < v.best) v.best = line.y[i], v.best_step = line.x[i];
        const double target = v.final_step * 2.0 / 3.0;
        size_t nearest = 0;
        for (size_t i = 1; i < line.x.size(); ++i)
          if (std::fabs(line.x[i] - target) < std::fabs(line.x[nearest] - target)) nearest = i;
        v.two_thirds = line.y[nearest];
        out.push_back(v);
      }
    }
  }
  return out;
}

std::string plateau_markdown(const std::vector<ResultRow>& curves) {
  const std::vector<CurveVerdict> verdicts = curve_verdicts(curves);
  if (verdicts.empty()) return "";
  std::ostringstream out;
  out << "## Did training converge? (learning curves)\n\n"
      << "Each run scored its EMA weights during training (`curve.csv`); the curve here is the mean over seeds. "
         "A curve has **plateaued** when its final FID is within 10% of its best point and the last third of the "
         "run changed it by less than 10%. Curve points use fewer samples than the final score, so their FID is "
         "higher (biased) and noisier: compare points with points.\n\n"
      << "| task | method | best FID (step) | final FID (step) | at 2/3 of the run | plateaued |\n"
      << "|---|---|---|---|---|---|\n";
  int plateaued = 0;
  for (const CurveVerdict& v : verdicts) {
    out << "| " << markdown_escape(v.task) << " | " << markdown_escape(v.method) << " | " << fixed_number(v.best, 1)
        << " (" << fixed_number(v.best_step, 0) << ") | " << fixed_number(v.final, 1) << " ("
        << fixed_number(v.final_step, 0) << ") | " << fixed_number(v.two_thirds, 1) << " | "
        << (v.plateaued() ? "yes" : "**no**") << " |\n";
    plateaued += v.plateaued();
  }
  out << "\n" << plateaued << " of " << verdicts.size() << " curves plateaued.\n";
  return out.str();
}

}  // namespace difffit
