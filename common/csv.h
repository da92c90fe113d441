// CSV records (RFC 4180 quoting): one home for writing and reading them.
#pragma once

#include <string>
#include <vector>

namespace difffit {

// A field is quoted when it holds a comma, quote, CR or LF; quotes are doubled.
std::string csv_field(const std::string& value);
// Fields joined by commas, ending in "\n".
std::string csv_line(const std::vector<std::string>& fields);
// One record from a line (no line break inside quotes).
std::vector<std::string> parse_csv_line(const std::string& line);
// The fields between commas, without quoting: the numeric logs difffit writes itself
// (loss.csv, curve.csv), where a quote is not part of any valid row. "" gives no field.
std::vector<std::string> split_on_commas(const std::string& line);

}  // namespace difffit
