// The sweep's source of truth: an append-only file of JSON lines, one per event,
// each fsync'd before the coordinator acts on it. results.h5 is only a snapshot
// rebuilt from it, so a coordinator killed at any moment loses nothing recorded.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace difffit {

// What happened; written to the journal by name (sweep-started, started, ...).
enum class JournalEventType { SweepStarted, Started, Done, Failed, Stopped, Abandoned, Reset, SweepEnded };
const char* journal_event_name(JournalEventType type);
// The type of a name as written; throws a data error listing the known names otherwise.
JournalEventType parse_journal_event_type(const std::string& name);

struct JournalEvent {
  JournalEventType type = JournalEventType::Started;
  std::string time;          // UTC, ISO 8601 (filled in by append when empty)
  std::string run_id;        // run events
  int attempt = 0;
  int rank = 0;
  double seconds = 0;        // wall time of the attempt (done, failed, stopped)
  std::string run_dir;       // done
  std::string metrics_json;  // done: the run's metrics.json (a JSON object)
  std::string error;         // failed / abandoned: why
  int signal = 0;            // stopped
  std::string detail;        // sweep events: free text
};

class Journal {
 public:
  // Opens (creating) the journal for appending; a torn last line from a crash is
  // closed off first so the next record starts on its own line.
  explicit Journal(std::string path);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  void append(JournalEvent event);  // durable when it returns
  const std::string& path() const { return path_; }

  // Every readable event in order; unreadable lines (torn writes) are skipped and
  // counted in `skipped` when given. A readable line with an unknown event is a data error
  // naming the file and line (a journal of another version, not a crash's trace). A known
  // event that cannot be used (a run event without its run id, a field of the wrong kind,
  // done metrics that are not a JSON object) is skipped with a warning "FILE:LINE: why",
  // also listed in `invalid` when given: its run is simply not done (a finished run reports
  // its metrics.json again when assigned) and results.h5 is still rebuilt.
  static std::vector<JournalEvent> read(const std::string& path, int* skipped = nullptr,
                                        std::vector<std::string>* invalid = nullptr);

 private:
  std::string path_;
  int fd_ = -1;
};

// A readable journal line that is not a usable event; the message names the field.
struct InvalidJournalEvent : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string encode_journal_event(const JournalEvent& event);  // one line, no newline
// Throws on a bad line: Error on an unknown event, InvalidJournalEvent on an unusable one.
JournalEvent decode_journal_event(const std::string& line);
std::string utc_now_iso8601();
// Seconds since the epoch of a time as utc_now_iso8601 writes it; NaN when it is not one.
double parse_iso8601_utc(const std::string& time);

// What a journal says of the sweep's own life, for the findings page: its jobs (sweep-started
// events), their summed wall time (each from its start to its sweep-ended event, or to its
// last event when the job died), and the time of the last finished run.
struct SweepHistory {
  int jobs = 0;
  double wall_seconds = 0;
  std::string first_started, last_done;
  // For `sweep status`'s estimate: the finished attempts' wall times (all jobs, and the last
  // job's alone: the machine it ran on), and how many runs the last job ran at a time (the
  // ranks that started one).
  std::vector<double> run_seconds, last_job_run_seconds;
  int last_job_ranks = 0;
};
SweepHistory sweep_history(const std::vector<JournalEvent>& events);

}  // namespace difffit
