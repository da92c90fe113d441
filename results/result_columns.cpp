#include "results/result_columns.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

namespace difffit {

std::vector<std::string> text_columns(const std::vector<ResultRow>& rows) {
  std::set<std::string> names;
  for (const ResultRow& row : rows)
    for (const auto& [name, value] : row.text) names.insert(name);
  std::vector<std::string> out;
  for (const char* first : {"grid", "run_id", "name"}) {
    if (names.erase(first)) out.push_back(first);
  }
  out.insert(out.end(), names.begin(), names.end());
  return out;
}

std::vector<std::string> numeric_columns(const std::vector<ResultRow>& rows) {
  std::set<std::string> names;
  for (const ResultRow& row : rows)
    for (const auto& [name, value] : row.numbers) names.insert(name);
  return {names.begin(), names.end()};
}

std::string describe_columns(const std::vector<ResultRow>& rows) {
  auto join = [](const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? std::string("(none)") : out;
  };
  return "text columns: " + join(text_columns(rows)) + "; numeric columns: " + join(numeric_columns(rows));
}

std::string text_value(const ResultRow& row, const std::string& column) {
  const auto it = row.text.find(column);
  return it == row.text.end() ? std::string() : it->second;
}

double number_value(const ResultRow& row, const std::string& column) {
  const auto it = row.numbers.find(column);
  return it == row.numbers.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

std::string round_trip_number(double value) {
  if (std::isnan(value)) return "";
  char buf[64];
  if (std::fabs(value) < 1e16 && value == std::trunc(value)) {  // counts stay counts: 1000000, not 1e+06
    std::snprintf(buf, sizeof buf, "%.0f", value == 0.0 ? 0.0 : value);
    return buf;
  }
  const auto result = std::to_chars(buf, buf + sizeof buf, value);  // shortest round-trip form
  return std::string(buf, result.ptr);
}

std::string fixed_number(double value, int decimals) {
  if (std::isnan(value)) return "";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  if (std::fabs(value) >= 1e15) {  // no table cell of 300 digits
    std::snprintf(buf, sizeof buf, "%.3g", value);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.*f", std::clamp(decimals, 0, 17), value);
  std::string out = buf;
  if (out.find_first_not_of("-0.") == std::string::npos && out[0] == '-') out.erase(0, 1);  // no "-0.00"
  return out;
}

std::string markdown_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::strchr("|*_`[]<>&\\#", c) && c != '\0') out += '\\';
    out += c == '\n' || c == '\r' ? ' ' : c;
  }
  return out;
}

}  // namespace difffit
