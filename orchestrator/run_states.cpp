#include "orchestrator/run_states.h"

namespace difffit {

const char* run_state_name(RunState state) {
  switch (state) {
    case RunState::Pending: return "pending";
    case RunState::Running: return "running";
    case RunState::Done: return "done";
    case RunState::Failed: return "failed";
    case RunState::Blocked: return "blocked";
  }
  return "?";
}

RunStates::RunStates(const SweepPlan& plan, int max_attempts)
    : plan_(plan), max_attempts_(max_attempts), progress_(plan.runs.size()) {
  for (size_t i = 0; i < progress_.size(); ++i) not_done_.insert(not_done_.end(), i);
}

void RunStates::apply(const JournalEvent& e) {
  auto found = plan_.index_of.find(e.run_id);
  if (found == plan_.index_of.end()) {
    if (e.type == JournalEventType::Done && !e.run_id.empty()) done_outside_plan_.insert(e.run_id);
    return;
  }
  RunProgress& p = progress_[found->second];
  if (e.type == JournalEventType::Started) {
    p.running = true;
    p.starts = std::max(p.starts, e.attempt);
    p.rank = e.rank;
  } else if (e.type == JournalEventType::Done) {
    if (!p.done) {
      ++done_;
      not_done_.erase(found->second);
    }
    p.running = false;
    p.done = true;
    p.seconds = e.seconds;
    p.run_dir = e.run_dir;
    p.metrics_json = e.metrics_json;
  } else if (e.type == JournalEventType::Failed) {
    p.running = false;
    ++p.failures;
    p.last_error = e.error;
  } else if (e.type == JournalEventType::Abandoned) {
    p.running = false;
    ++p.abandoned;
    p.last_error = e.error;
  } else if (e.type == JournalEventType::Stopped) {
    p.running = false;  // saved its checkpoint on a signal: not a failure
  } else if (e.type == JournalEventType::Reset) {
    p.failures = 0;
    p.abandoned = 0;
  }
}

void RunStates::apply_all(const std::vector<JournalEvent>& events) {
  for (const auto& e : events) apply(e);
}

RunState RunStates::state(size_t index) const {
  const RunProgress& p = progress_.at(index);
  if (p.done) return RunState::Done;
  if (p.running) return RunState::Running;
  // A job that died (pre-emption, node loss, kill -9) is not the run's fault: only its own
  // failures count against max_attempts; a run whose job died kAbandonedLimit times is given up.
  if (p.failures >= max_attempts_ || p.abandoned >= kAbandonedLimit) return RunState::Failed;
  for (size_t dep : plan_.runs[index].depends_on) {
    RunState s = state(dep);
    if (s == RunState::Failed || s == RunState::Blocked) return RunState::Blocked;
  }
  return RunState::Pending;
}

long RunStates::next_runnable(const std::set<size_t>& excluded) const {
  for (size_t i : not_done_) {
    if (progress_[i].running || state(i) != RunState::Pending || excluded.count(i)) continue;
    bool ready = true;
    for (size_t dep : plan_.runs[i].depends_on) ready = ready && progress_[dep].done;
    if (ready) return static_cast<long>(i);
  }
  return -1;
}

bool RunStates::any_runnable_or_running() const {
  for (size_t i = 0; i < progress_.size(); ++i) {
    RunState s = state(i);
    if (s == RunState::Pending || s == RunState::Running) return true;
  }
  return false;
}

std::vector<size_t> RunStates::running() const {
  std::vector<size_t> out;
  for (size_t i = 0; i < progress_.size(); ++i) {
    if (progress_[i].running) out.push_back(i);
  }
  return out;
}

std::vector<size_t> RunStates::given_up() const {
  std::vector<size_t> out;
  for (size_t i = 0; i < progress_.size(); ++i) {
    if (state(i) == RunState::Failed) out.push_back(i);
  }
  return out;
}

size_t RunStates::count(RunState s) const {
  if (s == RunState::Done) return done_;
  size_t n = 0;
  for (size_t i = 0; i < progress_.size(); ++i) n += state(i) == s;
  return n;
}

std::string outside_plan_note(size_t count, const std::string& sweep_name) {
  return std::to_string(count) + " finished run(s) are not in this sweep's plan (another sweep file named '" +
         sweep_name + "' with this output_dir, or grids taken out): the journal keeps them, results.h5 holds this "
         "plan's runs";
}

}  // namespace difffit
