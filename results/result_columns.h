// Column names and value formatting shared by the results store, tables, plots and the
// CLI. Rows are sparse (a row may lack a column); these helpers read them densely.
#pragma once

#include <string>
#include <vector>

#include "results/result_row.h"

namespace difffit {

// Every text column of any row: grid, run_id, name first (when present), the rest sorted.
std::vector<std::string> text_columns(const std::vector<ResultRow>& rows);
// Every numeric column of any row, sorted.
std::vector<std::string> numeric_columns(const std::vector<ResultRow>& rows);
// "text columns: a, b; numeric columns: c, d" — for error messages.
std::string describe_columns(const std::vector<ResultRow>& rows);

std::string text_value(const ResultRow& row, const std::string& column);  // "" when missing
double number_value(const ResultRow& row, const std::string& column);     // NaN when missing

// The shortest decimal that reads back as the same double (whole numbers below 1e16
// without an exponent); "" for NaN.
std::string round_trip_number(double value);
// Fixed-point with `decimals` digits ("1.50"); "" for NaN, "inf" for infinity, 3 significant
// digits from 1e15 on (a value no table should spell in 300 digits).
std::string fixed_number(double value, int decimals);

// A sweep's label (the user's own text) as literal Markdown, in a table cell or a sentence:
// Markdown's punctuation (| * _ ` [ ] < > & \\ #) backslash-escaped, line breaks (CR, LF) as
// spaces, so it renders as typed and a table row stays one row.
std::string markdown_escape(const std::string& text);

}  // namespace difffit
