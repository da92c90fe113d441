// What `difffit results` makes of a results file, one plain request struct per view: the
// charts of `plot`, the listing of `show` and the findings page or line. The command only
// turns its flags into a request.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "results/result_table.h"

namespace difffit {

// "K=V" of --where, as TableSpec::where keeps it; a usage error otherwise.
std::pair<std::string, std::string> parse_where(const std::string& filter);

enum class PlotKind {
  Bars,    // the pivot table as a grouped bar chart (groups = spec.col_key, bars = spec.row_key)
  Curves,  // learning curves: spec.value against step, one line per spec.row_key value, band over seeds
  Loss,    // the runs' loss.csv curves: of run folders, or of the runs one results file selects
};

struct PlotRequest {
  PlotKind kind = PlotKind::Bars;
  std::vector<std::string> inputs;  // one results file; Loss: run folders, or one results file
  TableSpec spec;                   // the selection, and rows, columns and value
  std::string title;                // "" = from the data
  std::string loss_column = "loss"; // Loss: loss | mse | vb
  int smooth = 1;                   // Loss: trailing moving average over this many logged steps
  bool log_y = false;               // Curves and Loss: logarithmic y axis
};

// The SVG chart; a data error naming the file when the selection has nothing to draw.
std::string plot_svg(const PlotRequest& request);

struct ListingRequest {
  std::string path;                  // the results file
  TableSpec selection;               // grid and where
  std::vector<std::string> columns;  // empty = every column (text ones first)
  size_t width = 24;                 // values clipped to this many characters
};

// "PATH: N of M rows; attribute = value ...", then one aligned line per selected row; a
// usage error names an unknown column and lists the file's columns.
std::string results_listing(const ListingRequest& request);

struct FindingsRequest {
  std::string path;    // the results file
  TableSpec selection; // grid and where
  bool line = false;   // one sentence (and one on scale, with a scale grid) instead of the page
  std::string output;  // where the page goes: a scale grid's chart, scale-gap.svg, is written beside it
};

// The findings page (Markdown) or the line(s), each line ending in a newline.
std::string findings_text(const FindingsRequest& request);
// Where a findings page written to `output` puts its scale chart (for the output checks).
std::string findings_chart_path(const std::string& output);

}  // namespace difffit
