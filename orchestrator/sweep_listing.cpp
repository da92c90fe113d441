#include "orchestrator/sweep_listing.h"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

namespace difffit {
namespace {

std::string labels_of(const PlannedRun& run) {
  if (run.memberships.empty()) return "(base of other runs)";
  std::string text;
  for (const auto& m : run.memberships) {
    text += (text.empty() ? "" : "; ") + m.grid;
    for (const auto& [axis, label] : m.labels) text += " " + axis + "=" + label;
  }
  return text;
}

// One number of a done run's metrics, or "" (none, or a journal line from another version).
std::string metric_cell(const std::string& metrics_json, const char* key, int decimals) {
  if (metrics_json.empty()) return "";
  const auto j = nlohmann::json::parse(metrics_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return "";
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << j[key].get<double>();
  return out.str();
}

std::string note_of(RunState state, const RunProgress& p) {
  if (state == RunState::Failed || (state == RunState::Pending && !p.last_error.empty()))
    return p.last_error.substr(0, 100);
  if (state == RunState::Running) return "on rank " + std::to_string(p.rank);
  if (state == RunState::Blocked) return "a run it starts from failed";
  return "";
}

}  // namespace

std::string time_left_line(const SweepHistory& history, size_t runs_left) {
  const bool last_job = !history.last_job_run_seconds.empty();
  std::vector<double> seconds = last_job ? history.last_job_run_seconds : history.run_seconds;
  if (runs_left == 0 || seconds.empty()) return "";
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  const double median = seconds[seconds.size() / 2];
  const int at_a_time = std::max(1, history.last_job_ranks);
  const double hours = median * static_cast<double>(runs_left) / at_a_time / 3600.0;
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << "left: " << runs_left << " run" << (runs_left == 1 ? "" : "s")
      << "; a run took " << median / 60.0 << " min (median of " << (last_job ? "the last job's " : "")
      << seconds.size() << (last_job ? "" : " finished runs") << "), " << at_a_time << " at a time: about " << hours
      << " h";
  return out.str();
}

std::string sweep_plan_listing(const SweepConfig& config, const SweepPlan& plan) {
  std::ostringstream out;
  out << "sweep " << config.name << ": " << plan.runs.size() << " runs in " << config.grids.size()
      << " grid(s); state in " << config.state_dir() << "\n";
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const PlannedRun& run = plan.runs[i];
    out << std::setw(4) << i << "  " << run.run_id << "  " << std::left << std::setw(36) << run.name << std::right
        << "  " << labels_of(run);
    if (!run.depends_on.empty()) {
      out << "  (after";
      for (size_t d : run.depends_on) out << " #" << d;
      out << ")";
    }
    out << "\n";
  }
  return out.str();
}

std::string sweep_status_listing(const SweepConfig& config, const SweepPlan& plan, const RunStates& states,
                                 const std::string& journal_path, const SweepHistory& history) {
  std::ostringstream out;
  out << std::left << std::setw(5) << "#" << std::setw(9) << "state" << std::setw(9) << "attempts" << std::setw(38)
      << "name" << std::setw(18) << "run id" << std::setw(10) << "FID" << std::setw(9) << "seconds" << "note\n";
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const RunProgress& p = states.progress(i);
    const RunState s = states.state(i);
    out << std::setw(5) << i << std::setw(9) << run_state_name(s) << std::setw(9) << p.starts << std::setw(38)
        << plan.runs[i].name << std::setw(18) << plan.runs[i].run_id << std::setw(10)
        << metric_cell(p.metrics_json, "fid", 2) << std::setw(9)
        << (p.done ? std::to_string(static_cast<int>(p.seconds)) : "") << note_of(s, p) << "\n";
  }
  out << "\n" << states.count(RunState::Done) << "/" << plan.runs.size() << " done, "
      << states.count(RunState::Running) << " running, " << states.count(RunState::Pending) << " pending, "
      << states.count(RunState::Failed) << " failed, " << states.count(RunState::Blocked) << " blocked"
      << "  (journal: " << journal_path << ")\n";
  if (const size_t outside = states.done_outside_plan()) out << "note: " << outside_plan_note(outside, config.name) << "\n";
  const std::string left = time_left_line(history, plan.runs.size() - states.count(RunState::Done));
  if (!left.empty()) out << left << "\n";
  return out.str();
}

}  // namespace difffit
