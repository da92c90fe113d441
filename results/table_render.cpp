// Text renderings (declared in result_table.h): a pivot table as Markdown, LaTeX or CSV,
// and rows as aligned plain-text columns.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "common/csv.h"
#include "common/error.h"
#include "results/result_columns.h"
#include "results/result_table.h"

namespace difffit {

namespace {

bool any_repeated(const PivotTable& t) {
  for (const auto& row : t.cells)
    for (const TableCell& c : row)
      if (c.n > 1) return true;
  return false;
}

bool any_best(const PivotTable& t) {
  for (const auto& row : t.cells)
    for (const TableCell& c : row)
      if (c.best) return true;
  for (const TableCell& c : t.means)
    if (c.best) return true;
  return false;
}

// The sentence under (Markdown) or in (LaTeX caption) the table.
std::string caption(const PivotTable& t) {
  std::string out = t.title + "; " + (t.lower_is_better ? "lower" : "higher") + " is better";
  if (any_best(t)) out += ", best in bold";
  if (any_repeated(t)) out += "; mean ± std where a cell has several runs";
  if (t.has_mean) out += "; Mean only for rows with every " + t.col_key;
  return out + ".";
}

// A column name as a header: "method_name" -> "Method name".
std::string header_label(std::string s) {
  for (char& c : s)
    if (c == '_') c = ' ';
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

// Table rows as display strings: label, cells, mean, extras; `missing` for absent values.
template <typename Cell, typename Bold>
std::vector<std::vector<std::string>> body(const PivotTable& t, const std::string& missing, Cell cell, Bold bold) {
  std::vector<std::vector<std::string>> out;
  auto show = [&](const TableCell& c) { return c.n == 0 ? missing : c.best ? bold(cell(c)) : cell(c); };
  for (size_t r = 0; r < t.rows.size(); ++r) {
    std::vector<std::string> line{t.rows[r]};
    for (const TableCell& c : t.cells[r]) line.push_back(show(c));
    if (t.has_mean) line.push_back(show(t.means[r]));
    for (const TableExtra& e : t.extras) {
      const std::string v = format_extra(e, e.values[r], t.decimals);
      line.push_back(v.empty() ? missing : v);
    }
    out.push_back(std::move(line));
  }
  return out;
}

std::vector<std::string> header(const PivotTable& t) {
  std::vector<std::string> h{header_label(t.row_key)};
  h.insert(h.end(), t.columns.begin(), t.columns.end());
  if (t.has_mean) h.push_back("Mean");
  for (const TableExtra& e : t.extras) h.push_back(e.header);
  return h;
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\textbackslash{}"; break;
      case '~': out += "\\textasciitilde{}"; break;
      case '^': out += "\\textasciicircum{}"; break;
      case '&': case '%': case '$': case '#': case '_': case '{': case '}': out += '\\'; out += c; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string render_markdown(const PivotTable& t) {
  auto line = [](const std::vector<std::string>& fields) {
    std::string out = "|";
    for (const std::string& f : fields) out += " " + f + " |";
    return out + "\n";
  };
  std::vector<std::string> h = header(t);
  for (std::string& f : h) f = markdown_escape(f);
  std::string out = caption(t) + "\n\n" + line(h) + "|:---|";
  for (size_t i = 1; i < h.size(); ++i) out += "---:|";
  out += "\n";
  const auto rows = body(
      t, "–", [&](const TableCell& c) { return format_cell(c, t.decimals); },
      [](const std::string& s) { return "**" + s + "**"; });
  for (std::vector<std::string> r : rows) {
    r[0] = markdown_escape(r[0]);
    out += line(r);
  }
  return out;
}

std::string render_latex(const PivotTable& t) {
  const std::vector<std::string> h = header(t);
  std::string out = "% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n";
  std::string cap = latex_escape(caption(t));
  for (size_t at; (at = cap.find("±")) != std::string::npos;) cap.replace(at, std::string("±").size(), "$\\pm$");
  out += "\\caption{" + cap + "}\n\\begin{tabular}{l" + std::string(h.size() - 1, 'r') + "}\n\\toprule\n";
  for (size_t i = 0; i < h.size(); ++i) out += (i ? " & " : "") + latex_escape(h[i]);
  out += " \\\\\n\\midrule\n";
  const auto rows = body(
      t, "--", [&](const TableCell& c) { return format_cell(c, t.decimals, "$\\pm$"); },
      [](const std::string& s) { return "\\textbf{" + s + "}"; });
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) out += (i ? " & " : "") + (i == 0 ? latex_escape(r[i]) : r[i]);
    out += " \\\\\n";
  }
  return out + "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
}

std::string render_csv(const PivotTable& t) {
  const bool with_std = any_repeated(t);
  std::vector<std::string> h{t.row_key};
  for (const std::string& c : t.columns) {
    h.push_back(c);
    if (with_std) h.push_back(c + "_std");
  }
  if (t.has_mean) h.push_back("mean");
  for (const TableExtra& e : t.extras) h.push_back(e.column);
  std::string out = csv_line(h);
  for (size_t r = 0; r < t.rows.size(); ++r) {
    std::vector<std::string> line{t.rows[r]};
    for (const TableCell& c : t.cells[r]) {
      line.push_back(c.n ? round_trip_number(c.mean) : "");
      if (with_std) line.push_back(c.n > 1 ? round_trip_number(c.std) : "");
    }
    if (t.has_mean) line.push_back(t.means[r].n ? round_trip_number(t.means[r].mean) : "");
    for (const TableExtra& e : t.extras) line.push_back(round_trip_number(e.values[r]));
    out += line.empty() ? "" : csv_line(line);
  }
  return out;
}

TableFormat parse_table_format(const std::string& name) {
  if (name == "md" || name == "markdown") return TableFormat::Markdown;
  if (name == "latex" || name == "tex") return TableFormat::Latex;
  if (name == "csv") return TableFormat::Csv;
  throw_usage("table format must be md, latex or csv, not '" + name + "'");
}

std::string render_table(const PivotTable& table, TableFormat format) {
  switch (format) {
    case TableFormat::Latex: return render_latex(table);
    case TableFormat::Csv: return render_csv(table);
    case TableFormat::Markdown: break;
  }
  return render_markdown(table);
}

namespace {

// Display width in characters (UTF-8 code points), for aligning columns.
size_t glyphs(const std::string& s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string clipped(const std::string& s, size_t width) {
  if (glyphs(s) <= width) return s;
  std::string out;
  size_t n = 0;
  for (char c : s) {
    if ((c & 0xC0) != 0x80 && ++n > width - 1) break;
    out += c;
  }
  return out + "…";
}

std::string listing_value(const ResultRow& row, const std::string& column) {
  const auto number = row.numbers.find(column);
  if (number == row.numbers.end()) return text_value(row, column).empty() ? "-" : text_value(row, column);
  const double v = number->second;
  if (std::isnan(v)) return "-";
  if (std::fabs(v) < 1e15 && v == std::trunc(v)) return round_trip_number(v);  // counts in full
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::string render_listing(const std::vector<ResultRow>& rows, const std::vector<std::string>& columns, size_t width) {
  std::vector<std::vector<std::string>> lines{columns};
  for (const ResultRow& row : rows) {
    std::vector<std::string> line;
    for (const std::string& c : columns) line.push_back(listing_value(row, c));
    lines.push_back(std::move(line));
  }
  std::vector<size_t> widths(columns.size(), 1);
  for (auto& line : lines)
    for (size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], glyphs(line[i] = clipped(line[i], width)));
  std::string out;
  for (const auto& line : lines) {
    for (size_t i = 0; i < line.size(); ++i)
      out += line[i] + (i + 1 < line.size() ? std::string(widths[i] - glyphs(line[i]) + 2, ' ') : "");
    out += "\n";
  }
  return out;
}

}  // namespace difffit
