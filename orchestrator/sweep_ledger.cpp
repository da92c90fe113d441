#include "orchestrator/sweep_ledger.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/file_lock.h"
#include "common/json_text.h"
#include "common/logging.h"
#include "common/platform.h"
#include "common/run_folder.h"
#include "orchestrator/result_rows.h"
#include "results/results_store.h"

namespace difffit {
namespace {

double since(std::chrono::steady_clock::time_point begin) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
}

}  // namespace

SweepLedger::SweepLedger(const SweepConfig& config, const SweepPlan& plan, int ranks)
    : config_(config), plan_(plan), ranks_(ranks), states_(plan, config.max_attempts),
      begin_(std::chrono::steady_clock::now()) {
  // One sweep per state folder: a second job (a double submit) stops here, before the journal.
  std::filesystem::create_directories(config.state_dir());
  lock_ = std::make_unique<FileLock>(SweepFolder{config.state_dir()}.lock());
  // summary.json describes the job that wrote it: a job killed before its end (mpirun kills
  // ranks that have not exited 1 s after passing on SIGTERM) leaves none, never the last job's.
  std::error_code ignored;
  std::filesystem::remove(SweepFolder{config.state_dir()}.summary(), ignored);
  const std::string path = SweepFolder{config.state_dir()}.journal();
  int skipped = 0;
  const std::vector<JournalEvent> events = Journal::read(path, &skipped);
  states_.apply_all(events);
  history_ = sweep_history(events);
  for (size_t i = 0; i < plan_.runs.size(); ++i)
    if (states_.progress(i).done) add_rows(i);
  if (skipped) log()->warn("[sweep] {}: skipped {} unreadable line(s) (a write cut short by a crash)", path, skipped);
  if (const size_t outside = states_.done_outside_plan())
    log()->warn("[sweep] {}: {}", path, outside_plan_note(outside, config.name));
  journal_ = std::make_unique<Journal>(path);
  for (size_t index : states_.running()) {
    JournalEvent e;
    e.type = JournalEventType::Abandoned;
    e.run_id = plan_.runs[index].run_id;
    e.attempt = states_.progress(index).starts;
    e.rank = states_.progress(index).rank;
    e.error = "the sweep job ended while this run was running; it resumes from its checkpoint";
    append(e);
    log()->warn("[sweep] {} was running when the last job ended: it will resume", plan_.runs[index].name);
  }
  JournalEvent started;
  started.type = JournalEventType::SweepStarted;
  started.detail = std::to_string(plan_.runs.size()) + " runs, " + std::to_string(ranks_) + " ranks, " +
                   std::to_string(states_.count(RunState::Done)) + " already done";
  append(started);
}

void SweepLedger::add_rows(size_t index) {
  rows_[index] = result_rows_of(plan_, index, states_.progress(index));
  curve_rows_[index] = curve_rows_of(plan_, index, states_.progress(index));
}

void SweepLedger::append(JournalEvent event) {
  auto begin = std::chrono::steady_clock::now();
  journal_->append(event);
  states_.apply(event);
  timings.journal_s += since(begin);
}

RunRequest SweepLedger::start(size_t index, int rank) {
  RunRequest request = plan_.runs.at(index).request;
  request.attempt = states_.progress(index).starts + 1;
  JournalEvent e;
  e.type = JournalEventType::Started;
  e.run_id = plan_.runs[index].run_id;
  e.attempt = request.attempt;
  e.rank = rank;
  append(e);
  ++timings.assignments;
  return request;
}

void SweepLedger::record(const RunReport& report, int rank) {
  const PlannedRun& run = plan_.runs.at(static_cast<size_t>(report.index));
  JournalEvent e;
  e.run_id = run.run_id;
  e.attempt = report.attempt;
  e.rank = rank;
  e.seconds = report.seconds;
  switch (report.status) {
    case RunStatus::Done:
      if (const auto metrics = nlohmann::json::parse(report.metrics_json, nullptr, /*allow_exceptions=*/false);
          !metrics.is_object()) {
        // Never let a bad report take the coordinator down: the run failed, and says why.
        e.type = JournalEventType::Failed;
        e.error = RunFolder{report.run_dir}.metrics() + ": not a JSON object; the run's result cannot be recorded";
        log()->error("[sweep] {}: {}", run.name, e.error);
        break;
      }
      e.type = JournalEventType::Done;
      e.time = utc_now_iso8601();
      history_.last_done = e.time;
      e.run_dir = report.run_dir;
      e.metrics_json = report.metrics_json;
      break;
    case RunStatus::Failed:
      e.type = JournalEventType::Failed;
      e.error = report.error;
      break;
    case RunStatus::Stopped:
      e.type = JournalEventType::Stopped;
      e.signal = report.signal;
      break;
  }
  append(e);
  ++timings.finished;
  timings.run_seconds += report.seconds;
  if (e.type == JournalEventType::Done) {
    add_rows(static_cast<size_t>(report.index));
    // ETA: the runs left at this session's mean time per attempt, over the workers.
    const size_t done = states_.count(RunState::Done);
    const size_t left = plan_.runs.size() - done;
    const double workers = std::max(1, (ranks_ - 1) / config_.ranks_per_run);  // runs at a time
    const double eta_minutes = left * (timings.run_seconds / static_cast<double>(timings.finished)) / workers / 60.0;
    log()->info("[sweep] done {} ({}/{}) in {:.1f} s on rank {}; {} left, ETA {:.0f} min", run.name, done,
                plan_.runs.size(), report.seconds, rank, left, eta_minutes);
    const double since_last = since(last_snapshot_);
    if (timings.snapshots == 0 || since_last >= std::max(1.0, 20.0 * last_snapshot_cost_s_)) write_snapshot();
  } else if (report.status == RunStatus::Failed) {
    log()->error("[sweep] {} failed (attempt {}/{}) on rank {}: {}", run.name, report.attempt, config_.max_attempts,
                 rank, report.error);
  } else {
    log()->warn("[sweep] {} stopped by signal {} on rank {} (checkpoint saved)", run.name, report.signal, rank);
  }
}

void SweepLedger::record_lost(size_t index, int rank, const std::string& why) {
  JournalEvent e;
  e.type = JournalEventType::Failed;
  e.run_id = plan_.runs.at(index).run_id;
  e.attempt = states_.progress(index).starts;
  e.rank = rank;
  e.error = why;
  append(e);
  log()->error("[sweep] {}: {}", plan_.runs[index].name, why);
}

size_t SweepLedger::retry_failed() {
  size_t n = 0;
  for (size_t index : states_.given_up()) {
    JournalEvent e;
    e.type = JournalEventType::Reset;
    e.run_id = plan_.runs[index].run_id;
    append(e);
    ++n;
  }
  return n;
}

void SweepLedger::write_snapshot() {
  auto begin = std::chrono::steady_clock::now();
  const SweepFolder folder{config_.state_dir()};
  std::vector<ResultRow> rows;
  for (const auto& [index, run_rows] : rows_) rows.insert(rows.end(), run_rows.begin(), run_rows.end());
  std::vector<ResultRow> curves;
  for (const auto& [index, run_rows] : curve_rows_) curves.insert(curves.end(), run_rows.begin(), run_rows.end());
  // The snapshot is rebuilt from the journal, so failing to write it (a full disk, say)
  // loses nothing: the sweep goes on and the next finished run (or rerun) writes it again.
  try {
    // How far the sweep has come and what it has cost, over all its jobs (the findings page
    // says when it finished and its wall time).
    const size_t done = states_.count(RunState::Done);
    const std::string started = history_.first_started.empty() ? utc_now_iso8601() : history_.first_started;
    write_results_h5(folder.results(), rows,
                     {{"sweep", config_.name},
                      {"sweep_file", config_.source},
                      {"updated", utc_now_iso8601()},
                      {"runs_planned", std::to_string(plan_.runs.size())},
                      {"runs_done", std::to_string(done)},
                      {"jobs", std::to_string(history_.jobs + 1)},
                      {"first_started", started},
                      {"wall_seconds", std::to_string(static_cast<int64_t>(history_.wall_seconds + since(begin_)))},
                      {"finished", done == plan_.runs.size() ? history_.last_done : ""}},
                     curves);
    write_file_atomically(folder.results_csv(), results_csv(rows));
  } catch (const Error& e) {
    log()->error("[sweep] results snapshot not written ({}); the journal has every result", e.what());
  }
  last_snapshot_ = std::chrono::steady_clock::now();
  last_snapshot_cost_s_ = since(begin);
  timings.snapshot_s += last_snapshot_cost_s_;
  ++timings.snapshots;
}

bool SweepLedger::drain_requested() const {
  std::error_code ignored;
  return std::filesystem::exists(SweepFolder{config_.state_dir()}.drain(), ignored);
}

int SweepLedger::finish(int stop_signal, bool drained) {
  const size_t done = states_.count(RunState::Done), failed = states_.count(RunState::Failed),
               blocked = states_.count(RunState::Blocked), total = plan_.runs.size();
  JournalEvent e;
  e.type = JournalEventType::SweepEnded;
  e.signal = stop_signal;
  e.detail = std::to_string(done) + "/" + std::to_string(total) + " done, " + std::to_string(failed) + " failed, " +
             std::to_string(blocked) + " blocked" + (drained ? "; drained" : "");
  append(e);
  write_snapshot();
  const double wall = since(begin_);
  nlohmann::ordered_json summary;
  summary["sweep"] = config_.name;
  summary["ranks"] = ranks_;
  summary["ranks_per_run"] = config_.ranks_per_run;
  summary["runs"] = total;
  summary["done"] = done;
  summary["failed"] = failed;
  summary["blocked"] = blocked;
  summary["pending"] = total - done - failed - blocked;
  summary["stopped_by_signal"] = stop_signal;
  summary["drained"] = drained;
  summary["wall_seconds"] = wall;
  summary["attempts_started"] = timings.assignments;
  summary["attempts_finished"] = timings.finished;
  summary["run_seconds"] = timings.run_seconds;
  summary["journal_seconds"] = timings.journal_s;
  summary["snapshot_seconds"] = timings.snapshot_s;
  summary["snapshots_written"] = timings.snapshots;
  summary["coordinator_peak_rss_bytes"] = peak_memory_bytes();
  summary["dispatch_gap_seconds"] = timings.dispatch_gap_s;
  const double per_run = timings.finished ? 1.0 / static_cast<double>(timings.finished) : 0.0;
  summary["coordinator_seconds_per_run"] = (timings.journal_s + timings.snapshot_s) * per_run;
  summary["dispatch_gap_seconds_per_run"] = timings.dispatch_gap_s * per_run;
  write_file_atomically(SweepFolder{config_.state_dir()}.summary(), json_text(summary, 2) + "\n");
  log()->info("[sweep] {}: {} in {:.1f} s; results in {}/results.h5", config_.name, e.detail, wall,
              config_.state_dir());
  if (drained) {
    std::error_code ignored;
    std::filesystem::remove(SweepFolder{config_.state_dir()}.drain(), ignored);  // the request is honoured
    log()->info("[sweep] drained: no runs in flight, {} pending; rerun the same command to go on",
                total - done - failed - blocked);
  }
  if (stop_signal && done + failed + blocked < total) return 128 + stop_signal;
  if (drained && done + failed + blocked < total) return kDrainedExitCode;
  return (failed || blocked) ? 5 : 0;
}

}  // namespace difffit
