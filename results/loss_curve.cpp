#include "results/loss_curve.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "common/input_file.h"
#include "common/run_folder.h"
#include "results/result_columns.h"

namespace difffit {
namespace {

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  for (std::string field; std::getline(in, field, ',');) {
    if (!field.empty() && field.back() == '\r') field.pop_back();
    fields.push_back(field);
  }
  return fields;
}

double parse(const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    return used == text.size() ? v : NAN;
  } catch (const std::exception&) {
    return NAN;  // "nan", "inf" as written by the trainer, or a torn last line
  }
}

}  // namespace

LineSeries read_loss_curve(const std::string& run_dir, const std::string& column, int smooth) {
  namespace fs = std::filesystem;
  const fs::path path = RunFolder{run_dir}.loss();
  if (!check_input_file_if_present(path.string(), "a loss log"))
    throw_io(path.string() + ": cannot read (is " + run_dir + " a run folder?)");
  std::ifstream in(path);
  if (!in) throw_io(path.string() + ": cannot read (is " + run_dir + " a run folder?)");
  std::string line;
  if (!std::getline(in, line)) throw_data(path.string() + ": empty file");
  const std::vector<std::string> header = split(line);
  const auto find = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  const int x_index = find("step"), y_index = find(column);
  if (x_index < 0) throw_data(path.string() + ": no 'step' column (header: " + line + ")");
  if (y_index < 0) throw_usage(path.string() + ": no column '" + column + "' (header: " + line + ")");

  LineSeries series;
  fs::path name = fs::path(run_dir).lexically_normal();
  if (name.filename().empty()) name = name.parent_path();  // "runs/x/" -> "x"
  series.name = name.filename().string();
  std::vector<double> raw;
  while (std::getline(in, line)) {
    const std::vector<std::string> fields = split(line);
    if (fields.size() != header.size()) continue;  // an interrupted last line
    series.x.push_back(parse(fields[x_index]));
    raw.push_back(parse(fields[y_index]));
  }
  const size_t window = static_cast<size_t>(std::max(1, smooth));
  double sum = 0.0;
  size_t finite = 0;
  for (size_t i = 0; i < raw.size(); ++i) {  // running sum over the finite values in the window
    if (std::isfinite(raw[i])) sum += raw[i], ++finite;
    if (i >= window && std::isfinite(raw[i - window])) sum -= raw[i - window], --finite;
    series.y.push_back(std::isfinite(raw[i]) && finite > 0 ? sum / static_cast<double>(finite) : NAN);
  }
  return series;
}

std::vector<LineSeries> read_loss_curves(const std::vector<ResultRow>& runs, const std::string& row_key,
                                         const std::string& col_key, const std::string& column, int smooth) {
  std::vector<LineSeries> series;
  for (const ResultRow& run : runs) {
    series.push_back(read_loss_curve(text_value(run, "run_dir"), column, smooth));
    const std::string row_label = text_value(run, row_key), col_label = text_value(run, col_key);
    if (!row_label.empty()) series.back().name = col_label.empty() ? row_label : row_label + " / " + col_label;
  }
  return series;
}

}  // namespace difffit
