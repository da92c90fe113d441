// Pivot tables of a sweep's results, as in the paper: one table row per value of a text
// column (e.g. method), one table column per value of another (e.g. dataset), cells holding
// a numeric column (e.g. fid), plus a mean column and per-row extras (e.g. parameters).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "results/result_row.h"

namespace difffit {

struct TableSpec {
  std::string grid;  // keep only rows whose `grid` column equals this ("" = every row)
  std::vector<std::pair<std::string, std::string>> where;  // ... and whose text column K equals V
  std::string row_key = "method";   // text column: one table row per value, in order of first appearance
  std::string col_key = "dataset";  // text column: one table column per value, likewise
  std::string value = "fid";        // numeric column averaged into the cells (NaN values are skipped)
  bool lower_is_better = true;      // which end of a column is marked best
  int decimals = 2;                 // digits after the point in cells and the mean column
  bool mean_column = true;          // mean over the columns, for rows that have every cell
  // Numeric columns shown once per table row (the mean over its runs): "*_params" in millions,
  // "A/B%" = 100 A/B per run, "trainable_pct" = "trainable_params/total_params%".
  std::vector<std::string> extra;
  // Names the value in titles and axes. Empty: the rows' `metric_column` when the value is
  // `score_column` (the sweep stores a score in "fid" and its name, e.g. "FID (mini-CNN)",
  // in "metric"), else the value column's name.
  std::string value_label;
  std::string score_column = "fid";
  std::string metric_column = "metric";
};

struct TableCell {
  int n = 0;      // runs averaged (0 = missing cell)
  double mean = 0.0;
  double std = 0.0;  // sample standard deviation, when n > 1
  bool best = false;
};

struct TableExtra {
  std::string column;  // as given in TableSpec::extra
  std::string header;  // "Params (M)", "Trainable (%)", or the column name
  double scale = 1.0;  // displayed value = scale * mean
  bool adaptive = false;  // 2 decimals from 1 up, else 3 significant digits
  std::vector<double> values;  // per table row, unscaled (NaN when no run has it)
};

struct PivotTable {
  std::string value_label;  // e.g. "FID (mini-CNN)"
  std::string title;        // e.g. "FID (mini-CNN) by method and dataset (grid table1)"
  std::string row_key, col_key, value;
  std::vector<std::string> rows, columns;   // labels
  std::vector<std::vector<TableCell>> cells;  // [row][column]
  bool has_mean = false;
  std::vector<TableCell> means;  // per row, the mean of its cell means; n = 0 when a cell is missing
  std::vector<TableExtra> extras;
  bool lower_is_better = true;
  int decimals = 2;
};

// The rows of spec.grid that pass spec.where (every row when neither is set); throws a
// usage error naming the column when a filter column is not in the data.
std::vector<ResultRow> select_rows(const std::vector<ResultRow>& rows, const TableSpec& spec);
// The same, but a grid or filter that selects nothing is a usage error listing the file's grids
// (a mistyped --grid would otherwise give an empty export or page).
std::vector<ResultRow> select_some_rows(const std::vector<ResultRow>& rows, const TableSpec& spec);

// Throws a usage error naming the column when a key, value or extra is not in the data,
// or when the selection is empty.
PivotTable build_pivot_table(const std::vector<ResultRow>& rows, const TableSpec& spec);

// "12.34", or "12.34 ± 0.56" when n > 1; "" for a missing cell.
std::string format_cell(const TableCell& cell, int decimals, const std::string& plus_minus = "±");
std::string format_extra(const TableExtra& extra, double value, int decimals);

// Renderers. Missing cells: "–" (Markdown), "--" (LaTeX), empty (CSV). Best values are
// bold in Markdown and LaTeX; the CSV holds full-precision means (and *_std columns when
// any cell averages several runs).
std::string render_markdown(const PivotTable& table);
std::string render_latex(const PivotTable& table);
std::string render_csv(const PivotTable& table);

enum class TableFormat { Markdown, Latex, Csv };
// "md" (or "markdown"), "latex" (or "tex"), "csv"; a usage error naming the others.
TableFormat parse_table_format(const std::string& name);
std::string render_table(const PivotTable& table, TableFormat format);

// Rows as aligned plain-text columns (`difffit results show`): a header line, then one line
// per row; numbers that are whole in full (673799072), others to 6 digits, missing "-";
// every value clipped to `width` characters (UTF-8 aware, "…" marks a cut).
std::string render_listing(const std::vector<ResultRow>& rows, const std::vector<std::string>& columns, size_t width);

}  // namespace difffit
