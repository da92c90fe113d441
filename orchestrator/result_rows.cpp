#include "orchestrator/result_rows.h"

#include <nlohmann/json.hpp>

namespace difffit {

std::vector<ResultRow> result_rows_of(const SweepPlan& plan, size_t index, const RunProgress& progress) {
  std::vector<ResultRow> rows;
  const PlannedRun& run = plan.runs.at(index);
  nlohmann::json metrics = nlohmann::json::object();
  if (!progress.metrics_json.empty()) metrics = nlohmann::json::parse(progress.metrics_json);
  for (const auto& membership : run.memberships) {
    ResultRow row;
    row.text["grid"] = membership.grid;
    row.text["run_id"] = run.run_id;
    row.text["name"] = run.name;
    row.text["run_dir"] = progress.run_dir.empty() ? run.run_dir : progress.run_dir;
    for (const auto& axis : plan.axis_names) row.text[axis] = "";
    for (const auto& [axis, label] : membership.labels) row.text[axis] = label;
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

std::vector<ResultRow> result_rows(const SweepPlan& plan, const RunStates& states) {
  std::vector<ResultRow> rows;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    if (states.state(i) != RunState::Done) continue;
    for (ResultRow& row : result_rows_of(plan, i, states.progress(i))) rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace difffit
