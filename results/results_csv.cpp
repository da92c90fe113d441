// The CSV export of a results file (declared in results_store.h).
#include "common/atomic_file.h"
#include "common/csv.h"
#include "results/result_columns.h"
#include "results/results_store.h"

namespace difffit {

std::string results_csv(const std::vector<ResultRow>& rows) {
  const std::vector<std::string> text = text_columns(rows), numeric = numeric_columns(rows);
  if (text.empty() && numeric.empty()) return "";
  std::vector<std::string> fields(text);
  fields.insert(fields.end(), numeric.begin(), numeric.end());
  std::string out = csv_line(fields);
  for (const ResultRow& row : rows) {
    fields.clear();
    for (const std::string& column : text) fields.push_back(text_value(row, column));
    for (const std::string& column : numeric) fields.push_back(round_trip_number(number_value(row, column)));
    out += csv_line(fields);
  }
  return out;
}

void write_results_csv(const std::string& path, const std::vector<ResultRow>& rows) {
  write_file_atomically(path, results_csv(rows));
}

}  // namespace difffit
