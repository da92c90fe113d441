#include "orchestrator/result_rows.h"

#include <limits>

#include <nlohmann/json.hpp>

namespace difffit {

namespace {

nlohmann::json metrics_of(const RunProgress& progress) {
  if (progress.metrics_json.empty()) return nlohmann::json::object();
  nlohmann::json metrics = nlohmann::json::parse(progress.metrics_json, nullptr, /*allow_exceptions=*/false);
  return metrics.is_object() ? metrics : nlohmann::json::object();
}

// The text columns that name a run in one grid: grid, run_id, name, run_dir, every axis.
ResultRow run_labels(const SweepPlan& plan, const PlannedRun& run, const GridMembership& membership,
                     const RunProgress& progress) {
  ResultRow row;
  row.text["grid"] = membership.grid;
  row.text["run_id"] = run.run_id;
  row.text["name"] = run.name;
  row.text["run_dir"] = progress.run_dir.empty() ? run.run_dir : progress.run_dir;
  for (const auto& axis : plan.axis_names) row.text[axis] = "";
  for (const auto& [axis, label] : membership.labels) row.text[axis] = label;
  return row;
}

}  // namespace

std::vector<ResultRow> result_rows_of(const SweepPlan& plan, size_t index, const RunProgress& progress) {
  std::vector<ResultRow> rows;
  const PlannedRun& run = plan.runs.at(index);
  const nlohmann::json metrics = metrics_of(progress);
  for (const auto& membership : run.memberships) {
    ResultRow row = run_labels(plan, run, membership, progress);
    for (const auto& [key, value] : metrics.items()) {
      if (key == "run_id" || key == "name") continue;
      // An axis may share a name with a metric (e.g. an axis called "method"): keep both.
      std::string column = row.text.count(key) ? key + "_name" : key;
      if (value.is_number()) {
        row.numbers[column] = value.get<double>();
      } else if (value.is_string()) {
        row.text[column] = value.get<std::string>();
      }
    }
    row.numbers["attempt"] = progress.starts;
    row.numbers["run_seconds"] = progress.seconds;
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<ResultRow> curve_rows_of(const SweepPlan& plan, size_t index, const RunProgress& progress) {
  std::vector<ResultRow> rows;
  const PlannedRun& run = plan.runs.at(index);
  const nlohmann::json metrics = metrics_of(progress);
  const auto curve = metrics.find("curve");
  if (curve == metrics.end() || !curve->is_object() || !curve->contains("step") || !(*curve)["step"].is_array())
    return rows;
  const size_t points = (*curve)["step"].size();
  for (const auto& membership : run.memberships) {
    for (size_t i = 0; i < points; ++i) {
      ResultRow row = run_labels(plan, run, membership, progress);
      for (const auto& [column, values] : curve->items()) {
        if (row.text.count(column)) continue;
        const bool number = values.is_array() && i < values.size() && values[i].is_number();
        row.numbers[column] = number ? values[i].get<double>() : std::numeric_limits<double>::quiet_NaN();
      }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

std::vector<ResultRow> result_rows(const SweepPlan& plan, const RunStates& states) {
  std::vector<ResultRow> rows;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    if (states.state(i) != RunState::Done) continue;
    for (ResultRow& row : result_rows_of(plan, i, states.progress(i))) rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace difffit
