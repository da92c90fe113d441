#include "results/paper_table.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "common/csv.h"
#include "common/error.h"
#include "common/input_file.h"

namespace difffit {
namespace {

double parse_value(const std::string& text, const std::string& where) {
  size_t used = 0;
  double v = 0.0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v)) throw_data(where + ": '" + text + "' is not a number");
  return v;
}

int index_in(const std::vector<std::string>& labels, const std::string& label) {
  const auto it = std::find(labels.begin(), labels.end(), label);
  return it == labels.end() ? -1 : static_cast<int>(it - labels.begin());
}

}  // namespace

PaperTable read_paper_table(const std::string& path) {
  check_input_file(path, "the paper's table (CSV)", kConfigFileLimit);
  std::ifstream in(path);
  if (!in) throw_io(path + ": cannot read the paper's table");
  PaperTable table;
  table.path = path;
  std::vector<std::string> header, methods;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '#') {  // a comment; "# source: ..." is the citation shown in titles
      const std::string tag = "# source:";
      if (table.source.empty() && line.compare(0, tag.size(), tag) == 0) {
        table.source = line.substr(tag.size());
        table.source.erase(0, table.source.find_first_not_of(' '));
      }
      continue;
    }
    const std::vector<std::string> fields = parse_csv_line(line);
    const std::string where = path + ":" + std::to_string(line_no);
    if (header.empty()) {
      if (fields.size() < 2 || fields[0] != "method")
        throw_data(where + ": the header must be method,<dataset>...[,params_m]");
      for (size_t c = 1; c < fields.size(); ++c)
        if (std::find(fields.begin() + 1, fields.begin() + c, fields[c]) != fields.begin() + c)
          throw_data(where + ": column '" + fields[c] + "' appears twice");
      header = fields;
      continue;
    }
    if (std::find(methods.begin(), methods.end(), fields[0]) != methods.end())
      throw_data(where + ": method '" + fields[0] + "' appears twice");
    methods.push_back(fields[0]);
    if (fields.size() != header.size())
      throw_data(where + ": " + std::to_string(fields.size()) + " fields, the header has " +
                 std::to_string(header.size()));
    double params = std::nan("");
    for (size_t c = 1; c < header.size(); ++c)
      if (header[c] == "params_m") params = 1e6 * parse_value(fields[c], where + " (params_m)");
    for (size_t c = 1; c < header.size(); ++c) {
      if (header[c] == "params_m") continue;
      ResultRow row;
      row.text = {{"method", fields[0]}, {"dataset", header[c]}, {"metric", "FID"}};
      row.numbers = {{"fid", parse_value(fields[c], where + " (" + header[c] + ")")}, {"trainable_params", params}};
      table.rows.push_back(std::move(row));
    }
  }
  if (table.rows.empty()) throw_data(path + ": no rows");
  return table;
}

PivotTable paper_pivot(const PaperTable& paper, const PivotTable& ours) {
  TableSpec spec;
  spec.decimals = ours.decimals;
  spec.lower_is_better = ours.lower_is_better;
  spec.mean_column = ours.has_mean;
  for (const TableExtra& e : ours.extras)
    if (e.column == "trainable_params") spec.extra.push_back(e.column);
  PivotTable table = build_pivot_table(paper.rows, spec);
  table.title = "The paper's FID by method and dataset (" + (paper.source.empty() ? paper.path : paper.source) + ")";
  // Keep the extras in the order of `ours`, missing where the paper has none.
  std::vector<TableExtra> extras;
  for (const TableExtra& e : ours.extras) {
    const auto it = std::find_if(table.extras.begin(), table.extras.end(),
                                 [&](const TableExtra& x) { return x.column == e.column; });
    TableExtra extra = it != table.extras.end() ? *it : e;
    if (it == table.extras.end()) extra.values.assign(table.rows.size(), std::nan(""));
    extras.push_back(std::move(extra));
  }
  table.extras = std::move(extras);
  return table;
}

bool interleave_paper_rows(PivotTable& ours, const PivotTable& paper) {
  if (paper.extras.size() != ours.extras.size()) throw_usage("results: the paper's table was not shaped like ours");
  bool shared_column = false;
  for (const std::string& c : ours.columns) shared_column = shared_column || index_in(paper.columns, c) >= 0;
  bool shared_row = false;
  for (const std::string& r : ours.rows) shared_row = shared_row || index_in(paper.rows, r) >= 0;
  if (!shared_column || !shared_row) return false;

  PivotTable out = ours;
  out.rows.clear(), out.cells.clear(), out.means.clear();
  for (TableExtra& e : out.extras) e.values.clear();
  for (size_t r = 0; r < ours.rows.size(); ++r) {
    out.rows.push_back(ours.rows[r]);
    out.cells.push_back(ours.cells[r]);
    if (ours.has_mean) out.means.push_back(ours.means[r]);
    for (size_t e = 0; e < ours.extras.size(); ++e) out.extras[e].values.push_back(ours.extras[e].values[r]);
    const int p = index_in(paper.rows, ours.rows[r]);
    if (p < 0) continue;
    out.rows.push_back(ours.rows[r] + " (paper)");
    std::vector<TableCell> cells(ours.columns.size());
    std::vector<double> shown;
    for (size_t c = 0; c < ours.columns.size(); ++c) {
      const int pc = index_in(paper.columns, ours.columns[c]);
      if (pc < 0) continue;
      cells[c] = paper.cells[p][pc];
      cells[c].best = false;
      if (cells[c].n > 0) shown.push_back(cells[c].mean);
    }
    out.cells.push_back(cells);
    if (ours.has_mean) {
      TableCell mean;
      if (shown.size() == ours.columns.size()) {
        mean.n = 1;
        for (double v : shown) mean.mean += v / static_cast<double>(shown.size());
      }
      out.means.push_back(mean);
    }
    for (size_t e = 0; e < ours.extras.size(); ++e) out.extras[e].values.push_back(paper.extras[e].values[p]);
  }
  out.title += "; rows \"(paper)\": " + paper.title;
  ours = std::move(out);
  return true;
}

std::string render_with_paper(PivotTable ours, const PaperTable& paper, TableFormat format) {
  if (ours.row_key != "method" || ours.col_key != "dataset" || ours.value != "fid")
    throw_usage("results table: --paper needs --rows method --cols dataset --value fid (the paper's table is FID "
                "of methods x datasets)");
  const PivotTable theirs = paper_pivot(paper, ours);
  if (interleave_paper_rows(ours, theirs)) return render_table(ours, format);
  if (format == TableFormat::Csv) throw_usage("results table: --paper --format csv needs datasets shared with the paper");
  return render_table(ours, format) + "\n" + render_table(theirs, format);
}

}  // namespace difffit
