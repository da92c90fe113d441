// Each planned run's state, folded from the journal, and which run to start next.
// Pure: no files, no MPI. PENDING -> RUNNING(attempt, rank) -> DONE | FAILED(n);
// a RUNNING run whose job died is "abandoned" on resume and runs again from its own
// checkpoint. A run's own failures are limited by max_attempts; job deaths while it ran
// are not its fault and have their own, higher limit (kAbandonedLimit).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "orchestrator/journal.h"
#include "orchestrator/sweep_plan.h"

namespace difffit {

// Job deaths during one run after which it is given up (it may be what kills the job).
inline constexpr int kAbandonedLimit = 10;

enum class RunState { Pending, Running, Done, Failed, Blocked };
const char* run_state_name(RunState state);  // pending | running | done | failed | blocked

struct RunProgress {
  bool done = false;
  bool running = false;     // started, no outcome yet
  int starts = 0;           // attempts begun
  int failures = 0;         // since the last reset
  int abandoned = 0;        // since the last reset: the job died while it ran
  int rank = 0;             // of the latest start
  double seconds = 0;       // of the finishing attempt
  std::string last_error;
  std::string run_dir;
  std::string metrics_json;  // of the done attempt
};

class RunStates {
 public:
  RunStates(const SweepPlan& plan, int max_attempts);

  void apply(const JournalEvent& event);  // events for runs outside the plan are only counted
  void apply_all(const std::vector<JournalEvent>& events);

  RunState state(size_t index) const;
  const RunProgress& progress(size_t index) const { return progress_.at(index); }
  // The first run in plan order that may start now: not done, not running, not given up,
  // every dependency done, not in `excluded`. -1 when none. Looks at runs not done only,
  // so its cost does not grow with the runs finished.
  long next_runnable(const std::set<size_t>& excluded = {}) const;
  bool any_runnable_or_running() const;
  std::vector<size_t> running() const;
  std::vector<size_t> given_up() const;  // failed max_attempts times
  size_t count(RunState state) const;  // O(1) for Done, O(runs) for the others
  // Finished runs in the journal that this plan does not have: another sweep file with the
  // same name and output_dir, or grids taken out of this one.
  size_t done_outside_plan() const { return done_outside_plan_.size(); }

 private:
  const SweepPlan& plan_;
  int max_attempts_;
  std::vector<RunProgress> progress_;
  std::set<size_t> not_done_;  // in plan order
  size_t done_ = 0;
  std::set<std::string> done_outside_plan_;
};

// What a job and `sweep status` say of RunStates::done_outside_plan().
std::string outside_plan_note(size_t count, const std::string& sweep_name);

}  // namespace difffit
