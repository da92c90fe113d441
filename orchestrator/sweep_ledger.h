// The coordinator's bookkeeping, shared by the MPI coordinator and the one-process
// driver: the journal, each run's state, the results snapshot (results.h5 and
// results.csv) and summary.json. The journal is the store, appended once per event; the
// snapshot is its compaction, rewritten after a finished run unless the last one is
// recent: at most once a second, and so that writing it takes at most 1/20 of the time
// (its cost grows with the results, so rewriting it after every run would make a sweep's
// bookkeeping grow with the square of its runs). Each done run's rows are built once.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/file_lock.h"
#include "orchestrator/journal.h"
#include "orchestrator/run_states.h"
#include "orchestrator/sweep_config.h"
#include "orchestrator/sweep_plan.h"
#include "results/result_row.h"

namespace difffit {

struct SweepTimings {
  double journal_s = 0;       // appending + fsync
  double snapshot_s = 0;      // rewriting results.h5 / results.csv
  int64_t snapshots = 0;      // how often
  double dispatch_gap_s = 0;  // worker free -> next assignment sent (summed)
  double run_seconds = 0;     // attempts finished in this session (summed, as measured by workers)
  int64_t assignments = 0;
  int64_t finished = 0;       // attempts that reported back in this session
};

// A job that drained on request (SweepFolder::drain) with runs left to do.
constexpr int kDrainedExitCode = 6;

class SweepLedger {
 public:
  // Reads the journal; runs it shows as running belonged to a job that died: they
  // are journalled as abandoned (and run again, resuming their own checkpoints).
  SweepLedger(const SweepConfig& config, const SweepPlan& plan, int ranks);

  const RunStates& states() const { return states_; }
  long next_runnable(const std::set<size_t>& excluded = {}) const { return states_.next_runnable(excluded); }
  // Journals the start; returns the request to execute (attempt filled in).
  RunRequest start(size_t index, int rank);
  // Journals a worker's report; a done run also refreshes the results snapshot (unless
  // the last one is recent: see above).
  void record(const RunReport& report, int rank);
  // A busy rank went silent: the attempt counts as failed.
  void record_lost(size_t index, int rank, const std::string& why);
  // Gives every run that failed max_attempts times a fresh set of attempts.
  size_t retry_failed();
  void write_snapshot();  // now
  // Journals the end, writes the snapshot and summary.json; returns the exit code:
  // 0 all done, 5 some failed or blocked, 128+signal when stopped, kDrainedExitCode when
  // `drained` (a DRAIN file, then removed) left runs pending.
  int finish(int stop_signal, bool drained = false);
  // The state folder's DRAIN file is there: start no more runs.
  bool drain_requested() const;

  SweepTimings timings;

 private:
  void append(JournalEvent event);
  void add_rows(size_t index);

  const SweepConfig& config_;
  const SweepPlan& plan_;
  int ranks_;
  std::unique_ptr<FileLock> lock_;  // held while this ledger lives
  std::unique_ptr<Journal> journal_;
  RunStates states_;
  std::chrono::steady_clock::time_point begin_;
  std::map<size_t, std::vector<ResultRow>> rows_;  // done runs' rows, in plan order
  std::map<size_t, std::vector<ResultRow>> curve_rows_;  // ... and their learning-curve points
  std::chrono::steady_clock::time_point last_snapshot_;
  double last_snapshot_cost_s_ = 0;
  SweepHistory history_;  // the earlier jobs', from the journal; last_done kept current
};

}  // namespace difffit
