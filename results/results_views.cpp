#include "results/results_views.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "common/error.h"
#include "results/findings.h"
#include "results/learning_curves.h"
#include "results/loss_curve.h"
#include "results/result_columns.h"
#include "results/result_plot.h"
#include "results/results_store.h"
#include "results/scale_findings.h"

namespace difffit {
namespace {

std::string only_input(const PlotRequest& request, const std::string& what) {
  if (request.inputs.size() != 1) throw_usage("results plot" + what + ": give exactly one results file (see --help)");
  return request.inputs[0];
}

std::string curves_svg(const PlotRequest& request) {
  const std::string path = only_input(request, " --curve");
  const std::vector<ResultRow> curves = select_rows(read_results_curves(path), request.spec);
  if (curves.empty()) throw_data(path + ": no learning-curve points (runs with eval.every) in the selection");
  LinePlotOptions plot;
  plot.y_label = request.spec.value;
  plot.title = request.title.empty() ? "Learning curves: " + request.spec.value : request.title;
  plot.log_y = request.log_y;
  return line_plot_svg(curve_series(curves, request.spec.row_key, request.spec.value), plot);
}

std::string loss_svg(const PlotRequest& request) {
  const std::vector<std::string>& inputs = request.inputs;
  if (inputs.empty()) throw_usage("results plot --loss: give run folders, or a results file and a selection");
  std::vector<LineSeries> series;
  if (inputs.size() == 1 && std::filesystem::is_regular_file(inputs[0])) {
    // A results file: the runs it selects, each named by its row and column labels.
    const TableSpec& spec = request.spec;
    series = read_loss_curves(select_rows(read_results_h5(inputs[0]), spec), spec.row_key, spec.col_key,
                              request.loss_column, request.smooth);
  } else {
    for (const std::string& dir : inputs) series.push_back(read_loss_curve(dir, request.loss_column, request.smooth));
  }
  LinePlotOptions plot;
  plot.y_label = request.loss_column;
  plot.title = request.title;
  if (plot.title.empty()) {
    plot.title = "Training " + request.loss_column;
    if (request.smooth > 1) plot.title += " (moving average of " + std::to_string(request.smooth) + ")";
  }
  plot.log_y = request.log_y;
  return line_plot_svg(series, plot);
}

}  // namespace

std::pair<std::string, std::string> parse_where(const std::string& filter) {
  const size_t eq = filter.find('=');
  if (eq == std::string::npos || eq == 0) throw_usage("results: --where expects COLUMN=VALUE, got '" + filter + "'");
  return {filter.substr(0, eq), filter.substr(eq + 1)};
}

std::string plot_svg(const PlotRequest& request) {
  switch (request.kind) {
    case PlotKind::Curves: return curves_svg(request);
    case PlotKind::Loss: return loss_svg(request);
    case PlotKind::Bars: break;
  }
  PivotTable table = build_pivot_table(read_results_h5(only_input(request, "")), request.spec);
  if (!request.title.empty()) table.title = request.title;
  return bar_chart_svg(table);
}

std::string results_listing(const ListingRequest& request) {
  std::map<std::string, std::string> attributes;
  const std::vector<ResultRow> all = read_results_h5(request.path, &attributes);
  const std::vector<ResultRow> rows = select_rows(all, request.selection);
  std::vector<std::string> columns = text_columns(all);
  const std::vector<std::string> numeric = numeric_columns(all);
  columns.insert(columns.end(), numeric.begin(), numeric.end());
  for (const std::string& c : request.columns)
    if (std::find(columns.begin(), columns.end(), c) == columns.end())
      throw_usage("results show: unknown column '" + c + "'; " + request.path + " has " + describe_columns(all));
  if (!request.columns.empty()) columns = request.columns;
  std::ostringstream out;
  out << request.path << ": " << rows.size() << " of " << all.size() << " rows";
  for (const auto& [key, value] : attributes) out << "; " << key << " = " << value;
  out << "\n" << render_listing(rows, columns, std::max<size_t>(request.width, 4));
  return out.str();
}

std::string findings_chart_path(const std::string& output) {
  return (std::filesystem::path(output).parent_path() / "scale-gap.svg").string();
}

std::string findings_text(const FindingsRequest& request) {
  std::map<std::string, std::string> attributes;
  const std::vector<ResultRow> rows = select_some_rows(read_results_h5(request.path, &attributes), request.selection);
  if (request.line) {
    std::string lines;
    for (const std::string& line : {findings_line(rows), scale_line(rows)})
      if (!line.empty()) lines += line + "\n";
    return lines;
  }
  std::vector<ResultRow> curves = read_results_curves(request.path);
  if (!curves.empty()) curves = select_rows(curves, request.selection);
  std::string chart;
  if (!request.output.empty() && !scale_gaps(rows).empty()) {
    chart = std::filesystem::path(findings_chart_path(request.output)).filename().string();
    write_svg(findings_chart_path(request.output), scale_gap_svg(rows));
  }
  return findings_markdown(rows, curves, attributes, chart);
}

}  // namespace difffit
