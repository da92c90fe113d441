#include "results/result_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/atomic_file.h"
#include "common/error.h"
#include "results/svg_writer.h"

namespace difffit {
namespace {

constexpr double kLeft = 72, kTop = 48, kPlotHeight = 300;

// Legend on the right: a swatch and a label per entry; returns its markup.
std::string legend(const std::vector<std::string>& names, double x, double y, bool lines) {
  std::string out = "<g class=\"legend\">\n";
  for (size_t i = 0; i < names.size(); ++i) {
    const double row = y + 18.0 * static_cast<double>(i);
    if (lines)
      out += "<line x1=\"" + svg::num(x) + "\" y1=\"" + svg::num(row + 6) + "\" x2=\"" + svg::num(x + 14) + "\" y2=\"" +
             svg::num(row + 6) + "\" stroke=\"" + svg::colour(i) + "\" stroke-width=\"2.5\"/>\n";
    else
      out += "<rect x=\"" + svg::num(x) + "\" y=\"" + svg::num(row) + "\" width=\"12\" height=\"12\" fill=\"" +
             svg::colour(i) + "\"/>\n";
    out += svg::text(x + 20, row + 10, names[i], "start");
  }
  return out + "</g>\n";
}

double legend_width(const std::vector<std::string>& names) {
  double w = 0;
  for (const std::string& n : names) w = std::max(w, svg::text_width(n));
  return w + 40;
}

// Horizontal grid lines with labels, the y axis line and its rotated label.
std::string y_axis(const svg::Ticks& ticks, double plot_width, const std::string& label, bool log_scale) {
  const auto py = [&](double v) { return kTop + kPlotHeight * (ticks.hi - v) / (ticks.hi - ticks.lo); };
  std::string out = "<g class=\"y-axis\">\n";
  for (double v : ticks.values) {
    out += "<line x1=\"" + svg::num(kLeft) + "\" y1=\"" + svg::num(py(v)) + "\" x2=\"" + svg::num(kLeft + plot_width) +
           "\" y2=\"" + svg::num(py(v)) + "\" stroke=\"#dddddd\"/>\n";
    char power[32];
    std::snprintf(power, sizeof power, "%.3g", std::pow(10.0, v));  // a log axis shows 10^v
    out += svg::text(kLeft - 6, py(v) + 4, log_scale ? std::string(power) : svg::tick_label(v, ticks.step), "end");
  }
  out += "<line x1=\"" + svg::num(kLeft) + "\" y1=\"" + svg::num(kTop) + "\" x2=\"" + svg::num(kLeft) + "\" y2=\"" +
         svg::num(kTop + kPlotHeight) + "\" stroke=\"#333333\"/>\n";
  const double lx = 18, ly = kTop + kPlotHeight / 2;
  out += svg::text(lx, ly, label, "middle", 12, "transform=\"rotate(-90 " + svg::num(lx) + " " + svg::num(ly) + ")\"");
  return out + "</g>\n";
}

// A cell with a finite mean gets a bar; infinite or NaN values (left out of the axis range
// too) are in the table, not the chart.
bool drawable(const TableCell& cell) { return cell.n > 0 && std::isfinite(cell.mean); }
bool has_spread(const TableCell& cell) { return cell.n > 1 && std::isfinite(cell.std); }

}  // namespace

std::string bar_chart_svg(const PivotTable& table) {
  const size_t groups = table.columns.size(), bars = table.rows.size();
  if (groups == 0 || bars == 0) throw_usage("results: nothing to plot (an empty table)");
  const double bar = std::clamp(220.0 / static_cast<double>(bars), 8.0, 26.0), gap = 24;
  const double group_width = bar * static_cast<double>(bars) + gap;
  const double plot_width = std::max(360.0, group_width * static_cast<double>(groups));
  double longest = 0, lo = 0, hi = 0;
  for (const std::string& c : table.columns) longest = std::max(longest, svg::text_width(c));
  const bool rotate = longest > group_width - 4;
  for (const auto& row : table.cells)
    for (const TableCell& c : row)
      if (drawable(c)) {
        const double spread = has_spread(c) ? c.std : 0.0;
        lo = std::min(lo, c.mean - spread), hi = std::max(hi, c.mean + spread);
      }
  const svg::Ticks ticks = svg::nice_ticks(lo, hi);
  const auto py = [&](double v) { return kTop + kPlotHeight * (ticks.hi - v) / (ticks.hi - ticks.lo); };
  const double bottom = rotate ? 30 + longest * 0.6 : 40;
  const double width = kLeft + plot_width + 20 + legend_width(table.rows);
  const double height = kTop + kPlotHeight + bottom + 24;

  std::string out = svg::open_document(width, height, table.title);
  out += svg::text(width / 2, 24, table.title, "middle", 15, "font-weight=\"bold\"");
  out += y_axis(ticks, plot_width, table.value_label + (table.lower_is_better ? " (lower is better)" : " (higher is better)"),
                false);
  out += "<g class=\"bars\">\n";
  for (size_t g = 0; g < groups; ++g) {
    const double x0 = kLeft + group_width * static_cast<double>(g) + gap / 2;
    for (size_t b = 0; b < bars; ++b) {
      const TableCell& cell = table.cells[b][g];
      if (!drawable(cell)) continue;
      const double x = x0 + bar * static_cast<double>(b), top = py(std::max(cell.mean, 0.0)),
                   base = py(std::min(cell.mean, 0.0));
      out += "<rect class=\"bar\" x=\"" + svg::num(x) + "\" y=\"" + svg::num(top) + "\" width=\"" +
             svg::num(bar - 2) + "\" height=\"" + svg::num(std::max(base - top, 0.5)) + "\" fill=\"" +
             svg::colour(b) + "\"><title>" + svg::escape(table.rows[b] + " / " + table.columns[g] + ": " +
                                                         format_cell(cell, table.decimals)) +
             "</title></rect>\n";
      if (has_spread(cell)) {
        const double cx = x + (bar - 2) / 2;
        out += "<line class=\"error-bar\" x1=\"" + svg::num(cx) + "\" y1=\"" + svg::num(py(cell.mean - cell.std)) +
               "\" x2=\"" + svg::num(cx) + "\" y2=\"" + svg::num(py(cell.mean + cell.std)) +
               "\" stroke=\"#222222\" stroke-width=\"1.2\"/>\n";
      }
    }
    const double cx = x0 + bar * static_cast<double>(bars) / 2, ly = kTop + kPlotHeight + 16;
    out += rotate ? svg::text(cx, ly, table.columns[g], "end", 12,
                              "transform=\"rotate(-35 " + svg::num(cx) + " " + svg::num(ly) + ")\"")
                  : svg::text(cx, ly, table.columns[g]);
  }
  out += "</g>\n<line x1=\"" + svg::num(kLeft) + "\" y1=\"" + svg::num(py(0)) + "\" x2=\"" +
         svg::num(kLeft + plot_width) + "\" y2=\"" + svg::num(py(0)) + "\" stroke=\"#333333\"/>\n";
  out += svg::text(kLeft + plot_width / 2, height - 8, table.col_key);
  out += legend(table.rows, kLeft + plot_width + 20, kTop, false);
  return out + "</svg>\n";
}

std::string line_plot_svg(const std::vector<LineSeries>& series, const LinePlotOptions& options) {
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  const auto usable = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!options.log_y || y > 0);
  };
  const auto ty = [&](double y) { return options.log_y ? std::log10(y) : y; };
  std::vector<std::string> names;
  for (const LineSeries& s : series) {
    names.push_back(s.name);
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (usable(s.x[i], s.y[i])) {
        x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
        y_lo = std::min(y_lo, ty(s.y[i])), y_hi = std::max(y_hi, ty(s.y[i]));
      }
    for (const auto* bound : {&s.low, &s.high})
      for (size_t i = 0; i < std::min(s.x.size(), bound->size()); ++i)
        if (usable(s.x[i], (*bound)[i])) y_lo = std::min(y_lo, ty((*bound)[i])), y_hi = std::max(y_hi, ty((*bound)[i]));
  }
  if (!std::isfinite(x_lo)) throw_data("results: no plottable points in any series");
  const svg::Ticks xt = svg::nice_ticks(x_lo, x_hi, 6), yt = svg::nice_ticks(y_lo, y_hi);
  const double plot_width = 520, width = kLeft + plot_width + 20 + legend_width(names), height = kTop + kPlotHeight + 56;
  const auto px = [&](double x) { return kLeft + plot_width * (x - xt.lo) / (xt.hi - xt.lo); };
  const auto py = [&](double y) { return kTop + kPlotHeight * (yt.hi - ty(y)) / (yt.hi - yt.lo); };

  std::string out = svg::open_document(width, height, options.title);
  out += svg::text(width / 2, 24, options.title, "middle", 15, "font-weight=\"bold\"");
  out += y_axis(yt, plot_width, options.y_label + (options.log_y ? " (log scale)" : ""), options.log_y);
  out += "<g class=\"x-axis\">\n<line x1=\"" + svg::num(kLeft) + "\" y1=\"" + svg::num(kTop + kPlotHeight) +
         "\" x2=\"" + svg::num(kLeft + plot_width) + "\" y2=\"" + svg::num(kTop + kPlotHeight) + "\" stroke=\"#333333\"/>\n";
  for (double v : xt.values) out += svg::text(px(v), kTop + kPlotHeight + 16, svg::tick_label(v, xt.step));
  out += svg::text(kLeft + plot_width / 2, height - 10, options.x_label) + "</g>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    // The band first, under every line: high from left to right, then low back.
    const LineSeries& s = series[k];
    const size_t n = std::min({s.x.size(), s.low.size(), s.high.size()});
    std::string upper, lower;
    bool spread = false;  // one run a line: no band to draw
    for (size_t i = 0; i < n; ++i) spread = spread || s.low[i] < s.high[i];
    for (size_t i = 0; spread && i < n; ++i)
      if (usable(s.x[i], s.low[i]) && usable(s.x[i], s.high[i])) {
        upper += svg::num(px(s.x[i])) + "," + svg::num(py(s.high[i])) + " ";
        lower = svg::num(px(s.x[i])) + "," + svg::num(py(s.low[i])) + " " + lower;
      }
    if (!upper.empty())
      out += "<polygon class=\"band\" fill=\"" + svg::colour(k) + "\" fill-opacity=\"0.18\" stroke=\"none\" points=\"" +
             upper + lower + "\"/>\n";
  }
  for (size_t k = 0; k < series.size(); ++k) {
    std::string points;
    const LineSeries& s = series[k];
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (usable(s.x[i], s.y[i])) points += (points.empty() ? "" : " ") + svg::num(px(s.x[i])) + "," + svg::num(py(s.y[i]));
    if (points.empty()) continue;
    out += "<polyline class=\"series\" fill=\"none\" stroke=\"" + svg::colour(k) +
           "\" stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"" + points + "\"><title>" + svg::escape(s.name) +
           "</title></polyline>\n";
  }
  out += legend(names, kLeft + plot_width + 20, kTop, true);
  return out + "</svg>\n";
}

void write_svg(const std::string& path, const std::string& svg) { write_file_atomically(path, svg); }

}  // namespace difffit
