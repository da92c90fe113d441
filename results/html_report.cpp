#include "results/html_report.h"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>

#include <boost/archive/iterators/base64_from_binary.hpp>
#include <boost/archive/iterators/transform_width.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "results/findings.h"
#include "results/learning_curves.h"
#include "results/result_columns.h"
#include "results/result_plot.h"
#include "results/result_table.h"
#include "results/scale_findings.h"
#include "results/svg_writer.h"

namespace difffit {
namespace {

// XML escaping suits HTML text and attribute values alike.
std::string escape_html(const std::string& text) { return svg::escape(text); }

std::string base64(const std::string& bytes) {
  using namespace boost::archive::iterators;
  using Encoder = base64_from_binary<transform_width<std::string::const_iterator, 6, 8>>;
  std::string out(Encoder(bytes.begin()), Encoder(bytes.end()));
  return out.append((3 - bytes.size() % 3) % 3, '=');
}

// Text columns that are not sweep axes: identity, paths and the run's own descriptions.
const std::set<std::string> kNotAxes = {"grid",   "run_id",      "name",     "run_dir",  "metric",
                                        "feature_net", "method_name", "precision"};

// A grid's axes: the text columns its rows fill in.
std::vector<std::string> grid_axes(const std::vector<ResultRow>& rows) {
  std::vector<std::string> axes;
  for (const std::string& column : text_columns(rows)) {
    if (kNotAxes.count(column)) continue;
    for (const ResultRow& row : rows) {
      if (!text_value(row, column).empty()) {
        axes.push_back(column);
        break;
      }
    }
  }
  return axes;
}

// Per column value (e.g. task) a chart of FID against step: a line per row value (method),
// the mean over seeds with a band from min to max.
std::string curve_charts(const TableSpec& spec, const std::string& metric, const std::vector<ResultRow>& all_curves) {
  if (all_curves.empty()) return "";
  TableSpec selection;
  selection.grid = spec.grid;
  const std::vector<ResultRow> curves = select_rows(all_curves, selection);
  if (curves.empty()) return "";
  std::ostringstream out;
  out << "<h3>Learning curves</h3><div class=\"curves\">\n";
  for (const std::string& column : distinct_values(curves, spec.col_key)) {
    std::vector<ResultRow> panel;
    for (const ResultRow& r : curves)
      if (text_value(r, spec.col_key) == column) panel.push_back(r);
    const std::vector<LineSeries> series = curve_series(panel, spec.row_key, "fid");
    if (series.empty()) continue;
    LinePlotOptions plot;
    plot.title = column.empty() ? "FID during training" : column;
    plot.y_label = metric.empty() ? "FID" : metric;
    plot.log_y = true;
    out << "<div class=\"chart\">" << line_plot_svg(series, plot) << "</div>\n";
  }
  out << "</div>\n";
  return out.str();
}

std::string grid_section(const std::string& grid, const std::vector<ResultRow>& all,
                         const std::vector<ResultRow>& curves) {
  TableSpec spec;
  spec.grid = grid;
  const std::vector<ResultRow> rows = select_rows(all, spec);
  const std::vector<std::string> axes = grid_axes(rows);
  const bool has = [&] {
    for (const ResultRow& r : rows)
      if (!std::isnan(number_value(r, "fid"))) return true;
    return false;
  }();
  if (!has || axes.empty()) return "";
  // Rows: the method, else the first axis but the seed; columns: the dataset, else another
  // axis but the seed (the transfer's pos_embed), else the grid. Seeds are pooled (mean ± std).
  auto has_axis = [&](const char* axis) { return std::find(axes.begin(), axes.end(), axis) != axes.end(); };
  auto other_axis = [&](const std::string& not_this) {
    for (const std::string& a : axes)
      if (a != "seed" && a != not_this) return a;
    return std::string();
  };
  spec.row_key = has_axis("method") ? "method" : other_axis("");
  if (spec.row_key.empty()) spec.row_key = axes.front();
  spec.col_key = has_axis("dataset") ? "dataset" : other_axis(spec.row_key);
  if (spec.col_key.empty()) spec.col_key = "grid";
  for (const char* extra : {"class_accuracy", "trainable_params", "steps_per_second"}) {
    for (const ResultRow& r : rows) {
      if (!std::isnan(number_value(r, extra))) {
        spec.extra.push_back(extra);
        break;
      }
    }
  }
  const PivotTable table = build_pivot_table(all, spec);
  std::ostringstream out;
  out << "<section class=\"grid\" id=\"grid-" << escape_html(grid) << "\"><h2>Grid " << escape_html(grid)
      << "</h2>\n" << markdown_to_html(render_markdown(table)) << "<div class=\"chart\">" << bar_chart_svg(table)
      << "</div>" << curve_charts(spec, text_value(rows.front(), "metric"), curves) << "</section>\n";
  return out.str();
}

std::string status_section(const std::vector<ReportRun>& runs, const std::string& page_dir) {
  std::map<std::string, int> counts;
  for (const ReportRun& r : runs) ++counts[r.state];
  std::ostringstream out;
  out << "<section id=\"status\"><h2>Runs</h2><p>";
  for (const auto& [state, n] : counts) out << "<span class=\"state " << state << "\">" << n << " " << state << "</span> ";
  out << "</p>\n<table class=\"runs\"><thead><tr><th>run</th><th>state</th><th>attempts</th><th>seconds</th>"
         "<th>reason</th><th>folder</th></tr></thead><tbody>\n";
  for (const ReportRun& r : runs) {
    std::string link = r.run_dir;
    if (!link.empty() && !page_dir.empty()) {
      std::error_code ec;
      const auto rel = std::filesystem::relative(std::filesystem::absolute(r.run_dir), std::filesystem::absolute(page_dir), ec);
      if (!ec && !rel.empty()) link = rel.string();
    }
    out << "<tr class=\"" << escape_html(r.state) << "\"><td>" << escape_html(r.name.empty() ? r.run_id : r.name)
        << "</td><td>" << escape_html(r.state) << "</td><td>" << r.attempts << "</td><td>" << static_cast<long>(r.seconds)
        << "</td><td>" << escape_html(r.error) << "</td><td>"
        << (link.empty() ? "" : "<a href=\"" + escape_html(link) + "/\">" + escape_html(r.run_id) + "</a>")
        << "</td></tr>\n";
  }
  out << "</tbody></table></section>\n";
  return out.str();
}

const char* kStyle = R"(
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.samples { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; } figcaption { text-align: center; font-weight: bold; }
figure img { image-rendering: pixelated; max-width: 560px; }
.chart svg { max-width: 100%; height: auto; }  /* wide grids (8 tasks x 8 methods) fit the page */
tr.failed td { background: #fdd; } tr.abandoned td, tr.running td { background: #ffd; }
.state { margin-right: 1em; }
)";

}  // namespace

std::string markdown_to_html(const std::string& markdown) {
  cmark_gfm_core_extensions_ensure_registered();
  cmark_parser* parser = cmark_parser_new(CMARK_OPT_DEFAULT);
  if (cmark_syntax_extension* table = cmark_find_syntax_extension("table")) cmark_parser_attach_syntax_extension(parser, table);
  cmark_parser_feed(parser, markdown.data(), markdown.size());
  cmark_node* doc = cmark_parser_finish(parser);
  char* html = cmark_render_html(doc, CMARK_OPT_DEFAULT, cmark_parser_get_syntax_extensions(parser));
  std::string out = html;
  std::free(html);
  cmark_node_free(doc);
  cmark_parser_free(parser);
  return out;
}

std::string html_report(const ReportInput& input) {
  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << escape_html(input.title)
      << "</title><style>" << kStyle << "</style></head><body>\n<h1>" << escape_html(input.title) << "</h1>\n";
  std::vector<std::string> grids;
  for (const ResultRow& row : input.rows) {
    const std::string g = text_value(row, "grid");
    if (std::find(grids.begin(), grids.end(), g) == grids.end()) grids.push_back(g);
  }
  for (const std::string& g : grids) out << grid_section(g, input.rows, input.curves);
  if (!input.sample_grids.empty()) {
    out << "<section id=\"samples\"><h2>Samples</h2><div class=\"samples\">\n";
    for (const ReportGrid& g : input.sample_grids) {
      out << "<figure><img alt=\"samples of " << escape_html(g.caption) << "\" src=\"data:image/png;base64,"
          << base64(g.png_bytes) << "\"><figcaption>" << escape_html(g.caption) << "</figcaption></figure>\n";
    }
    out << "</div></section>\n";
  }
  if (!input.rows.empty()) {
    out << "<section id=\"findings\">" << markdown_to_html(findings_markdown(input.rows, input.curves, input.attributes));
    const std::string scale_chart = scale_gap_svg(input.rows);
    if (!scale_chart.empty()) out << "<div class=\"chart\">" << scale_chart << "</div>";
    out << "</section>\n";
  }
  out << status_section(input.runs, input.page_dir) << "</body></html>\n";
  return out.str();
}

}  // namespace difffit
