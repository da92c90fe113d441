// Dependency-free SVG charts: a grouped bar chart of a pivot table (groups = its columns,
// e.g. datasets; bars = its rows, e.g. methods) and a line plot (e.g. loss curves).
#pragma once

#include <string>
#include <vector>

#include "results/result_table.h"

namespace difffit {

// One bar (class "bar") per non-missing cell, with a tooltip, an error bar (class
// "error-bar") when the cell averages several runs, a legend and a labelled y axis.
std::string bar_chart_svg(const PivotTable& table);

struct LineSeries {
  std::string name;
  std::vector<double> x, y;  // same length; non-finite points are skipped
  std::vector<double> low, high;  // optional band around y (e.g. the spread over seeds), same length
};

struct LinePlotOptions {
  std::string title;
  std::string x_label = "step";
  std::string y_label = "loss";
  bool log_y = false;  // log10 y axis (non-positive values are skipped)
};

// One polyline (class "series") per series with at least one point, its band (class
// "band", a translucent polygon) where it has one, and a legend.
std::string line_plot_svg(const std::vector<LineSeries>& series, const LinePlotOptions& options);

// Writes PATH.tmp and renames it into place.
void write_svg(const std::string& path, const std::string& svg);

}  // namespace difffit
