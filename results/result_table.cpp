#include "results/result_table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>

#include "common/error.h"
#include "results/result_columns.h"

namespace difffit {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void require_column(const std::vector<ResultRow>& rows, const std::string& column, bool numeric,
                    const std::string& role) {
  const std::vector<std::string> names = numeric ? numeric_columns(rows) : text_columns(rows);
  if (std::find(names.begin(), names.end(), column) == names.end())
    throw_usage("results: unknown " + std::string(numeric ? "numeric" : "text") + " column '" + column + "' (" + role +
                "); the results have " + describe_columns(rows));
}

// An extra column: a numeric column, or a per-run percentage "A/B%".
struct ExtraSource {
  std::string numerator, denominator;  // denominator empty: plain column
};

ExtraSource extra_source(const std::string& column) {
  const std::string spec = column == "trainable_pct" ? "trainable_params/total_params%" : column;
  const size_t slash = spec.find('/');
  if (slash == std::string::npos || spec.back() != '%') return {spec, ""};
  return {spec.substr(0, slash), spec.substr(slash + 1, spec.size() - slash - 2)};
}

TableExtra make_extra(const std::string& column, const ExtraSource& source) {
  TableExtra extra;
  extra.column = column;
  const auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (!source.denominator.empty()) {
    extra.header = column == "trainable_pct" ? "Trainable (%)" : source.numerator + " / " + source.denominator + " (%)";
    extra.adaptive = true;
  } else if (ends_with(column, "_params")) {
    extra.header = column == "trainable_params" ? "Params (M)" : column + " (M)";
    extra.scale = 1e-6;
    extra.adaptive = true;
  } else if (column == "class_accuracy") {
    extra.header = "Class acc. (%)";
    extra.scale = 100.0;
  } else if (column == "steps_per_second") {
    extra.header = "Steps/s";
  } else {
    extra.header = column;
  }
  return extra;
}

double extra_value(const ResultRow& row, const ExtraSource& source) {
  const double a = number_value(row, source.numerator);
  if (source.denominator.empty()) return a;
  const double b = number_value(row, source.denominator);
  return b != 0.0 ? 100.0 * a / b : kNaN;
}

bool selected(const ResultRow& row, const TableSpec& spec) {
  if (!spec.grid.empty() && text_value(row, "grid") != spec.grid) return false;
  for (const auto& [key, value] : spec.where)
    if (text_value(row, key) != value) return false;
  return true;
}

size_t index_of(std::vector<std::string>& labels, const std::string& label) {
  const auto it = std::find(labels.begin(), labels.end(), label);
  if (it != labels.end()) return static_cast<size_t>(it - labels.begin());
  labels.push_back(label);
  return labels.size() - 1;
}

TableCell summarize(const std::vector<double>& values) {
  TableCell cell;
  cell.n = static_cast<int>(values.size());
  if (values.empty()) return cell;
  // Offsets from the first value: exact for repeated values (a parameter count per run). In
  // long double, whose range holds the squares of any double: values near 1e308 give their
  // true mean and spread, not inf.
  long double offsets = 0.0L;
  for (double v : values) offsets += static_cast<long double>(v) - values[0];
  const long double mean = values[0] + offsets / cell.n;
  cell.mean = static_cast<double>(mean);
  if (cell.n > 1) {
    long double squares = 0.0L;
    for (double v : values) squares += (v - mean) * (v - mean);
    cell.std = static_cast<double>(std::sqrt(squares / (cell.n - 1)));
  }
  return cell;
}

// Marks the best of `cells` (ties at the displayed precision all count); only when at
// least two cells compete.
void mark_best(std::vector<TableCell*> cells, bool lower_is_better, int decimals) {
  const double unit = std::pow(10.0, decimals);
  std::vector<double> shown;
  for (TableCell* c : cells)
    if (c->n > 0) shown.push_back(std::round(c->mean * unit));
  if (shown.size() < 2) return;
  const double best = lower_is_better ? *std::min_element(shown.begin(), shown.end())
                                      : *std::max_element(shown.begin(), shown.end());
  for (TableCell* c : cells) c->best = c->n > 0 && std::round(c->mean * unit) == best;
}

std::string value_label(const std::vector<ResultRow>& rows, const TableSpec& spec) {
  if (!spec.value_label.empty()) return spec.value_label;
  if (spec.value != spec.score_column || spec.metric_column.empty()) return spec.value;
  std::vector<std::string> names;
  for (const ResultRow& row : rows) {
    const std::string metric = text_value(row, spec.metric_column);
    if (!metric.empty() && std::find(names.begin(), names.end(), metric) == names.end()) names.push_back(metric);
  }
  if (names.empty()) return spec.value;
  std::string label;
  for (const std::string& n : names) label += (label.empty() ? "" : " / ") + n;
  return label;
}

}  // namespace

std::vector<ResultRow> select_rows(const std::vector<ResultRow>& rows, const TableSpec& spec) {
  if (!spec.grid.empty()) require_column(rows, "grid", false, "grid filter");
  for (const auto& [key, value] : spec.where) require_column(rows, key, false, "filter " + key + "=" + value);
  std::vector<ResultRow> out;
  for (const ResultRow& row : rows)
    if (selected(row, spec)) out.push_back(row);
  return out;
}

namespace {

std::string grids_in(const std::vector<ResultRow>& rows) {
  std::set<std::string> grids;
  for (const ResultRow& row : rows) grids.insert(text_value(row, "grid"));
  std::string known;
  for (const std::string& g : grids) known += (known.empty() ? "" : ", ") + g;
  return known.empty() ? "(none)" : known;
}

}  // namespace

std::vector<ResultRow> select_some_rows(const std::vector<ResultRow>& rows, const TableSpec& spec) {
  std::vector<ResultRow> out = select_rows(rows, spec);
  if (out.empty() && (!spec.grid.empty() || !spec.where.empty()))
    throw_usage("results: no row matches the selection (grid '" + spec.grid + "' and filters); grids in the file: " +
                grids_in(rows));
  return out;
}

PivotTable build_pivot_table(const std::vector<ResultRow>& all_rows, const TableSpec& spec) {
  require_column(all_rows, spec.row_key, false, "table rows");
  require_column(all_rows, spec.col_key, false, "table columns");
  require_column(all_rows, spec.value, true, "cell value");
  std::vector<ExtraSource> sources;
  for (const std::string& column : spec.extra) {
    sources.push_back(extra_source(column));
    require_column(all_rows, sources.back().numerator, true, "extra " + column);
    if (!sources.back().denominator.empty())
      require_column(all_rows, sources.back().denominator, true, "extra " + column);
  }
  if (spec.decimals < 0 || spec.decimals > 12) throw_usage("results: decimals must be between 0 and 12");

  std::vector<ResultRow> rows;
  for (const ResultRow& row : select_rows(all_rows, spec))
    if (!text_value(row, spec.row_key).empty() && !text_value(row, spec.col_key).empty()) rows.push_back(row);
  if (rows.empty())
    throw_usage("results: no row matches the selection (grid '" + spec.grid + "' and filters) with both '" +
                spec.row_key + "' and '" + spec.col_key + "' set; grids in the file: " + grids_in(all_rows));

  PivotTable table;
  table.row_key = spec.row_key, table.col_key = spec.col_key, table.value = spec.value;
  table.lower_is_better = spec.lower_is_better;
  table.decimals = spec.decimals;
  table.value_label = value_label(rows, spec);
  table.title = table.value_label + " by " + spec.row_key + " and " + spec.col_key +
                (spec.grid.empty() ? "" : " (grid " + spec.grid + ")");

  std::map<std::pair<size_t, size_t>, std::vector<double>> values;
  std::map<std::pair<size_t, size_t>, std::vector<double>> extra_values;  // (row, extra)
  for (const ResultRow& row : rows) {
    const size_t r = index_of(table.rows, text_value(row, spec.row_key));
    const size_t c = index_of(table.columns, text_value(row, spec.col_key));
    const double v = number_value(row, spec.value);
    if (std::isfinite(v)) values[{r, c}].push_back(v);
    for (size_t e = 0; e < sources.size(); ++e) {
      const double x = extra_value(row, sources[e]);
      if (std::isfinite(x)) extra_values[{r, e}].push_back(x);
    }
  }
  table.cells.assign(table.rows.size(), std::vector<TableCell>(table.columns.size()));
  for (const auto& [at, list] : values) table.cells[at.first][at.second] = summarize(list);
  for (size_t c = 0; c < table.columns.size(); ++c) {
    std::vector<TableCell*> column;
    for (auto& row : table.cells) column.push_back(&row[c]);
    mark_best(column, spec.lower_is_better, spec.decimals);
  }
  table.has_mean = spec.mean_column && table.columns.size() > 1;
  if (table.has_mean) {
    table.means.resize(table.rows.size());
    std::vector<TableCell*> means;
    for (size_t r = 0; r < table.rows.size(); ++r) {
      std::vector<double> cell_means;
      for (const TableCell& cell : table.cells[r])
        if (cell.n > 0) cell_means.push_back(cell.mean);
      if (cell_means.size() == table.columns.size()) {
        table.means[r].n = 1;  // one value: the mean of the cell means, shown without a spread
        table.means[r].mean = summarize(cell_means).mean;
      }
      means.push_back(&table.means[r]);
    }
    mark_best(means, spec.lower_is_better, spec.decimals);
  }
  for (size_t e = 0; e < sources.size(); ++e) {
    TableExtra extra = make_extra(spec.extra[e], sources[e]);
    extra.values.assign(table.rows.size(), kNaN);
    for (size_t r = 0; r < table.rows.size(); ++r) {
      const auto it = extra_values.find({r, e});
      if (it != extra_values.end()) extra.values[r] = summarize(it->second).mean;
    }
    table.extras.push_back(std::move(extra));
  }
  return table;
}

std::string format_cell(const TableCell& cell, int decimals, const std::string& plus_minus) {
  if (cell.n == 0) return "";
  std::string out = fixed_number(cell.mean, decimals);
  if (cell.n > 1) out += " " + plus_minus + " " + fixed_number(cell.std, decimals);
  return out;
}

std::string format_extra(const TableExtra& extra, double value, int decimals) {
  if (std::isnan(value)) return "";
  const double v = value * extra.scale;
  if (!extra.adaptive || std::fabs(v) >= 1.0 || v == 0.0) return fixed_number(v, extra.adaptive ? 2 : decimals);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace difffit
