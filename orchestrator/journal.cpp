#include "orchestrator/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <type_traits>
#include <utility>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_text.h"
#include "common/logging.h"

namespace difffit {
namespace {

void write_all(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_io(path + ": write failed: " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

}  // namespace

std::string utc_now_iso8601() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

double parse_iso8601_utc(const std::string& time) {
  std::tm tm{};
  const char* end = strptime(time.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') return std::nan("");
  return static_cast<double>(timegm(&tm));
}

SweepHistory sweep_history(const std::vector<JournalEvent>& events) {
  SweepHistory history;
  double job_start = std::nan(""), job_last = std::nan("");
  auto close_job = [&] {
    if (!std::isnan(job_start) && !std::isnan(job_last)) history.wall_seconds += job_last - job_start;
    job_start = job_last = std::nan("");
  };
  std::set<int> ranks;  // of the current job
  for (const JournalEvent& e : events) {
    const double t = parse_iso8601_utc(e.time);
    if (e.type == JournalEventType::SweepStarted) {
      close_job();  // the previous job died without its sweep-ended event
      ++history.jobs;
      ranks.clear();
      history.last_job_run_seconds.clear();
      if (history.first_started.empty()) history.first_started = e.time;
      job_start = job_last = t;
      continue;
    }
    if (!std::isnan(t) && !std::isnan(job_start)) job_last = t;
    if (e.type == JournalEventType::Started) ranks.insert(e.rank);
    if (e.type == JournalEventType::Done) {
      history.last_done = e.time;
      history.run_seconds.push_back(e.seconds);
      history.last_job_run_seconds.push_back(e.seconds);
    }
    if (e.type == JournalEventType::SweepEnded) close_job();
  }
  close_job();
  history.last_job_ranks = static_cast<int>(ranks.size());
  return history;
}

namespace {
constexpr std::pair<JournalEventType, const char*> kEventNames[] = {
    {JournalEventType::SweepStarted, "sweep-started"}, {JournalEventType::Started, "started"},
    {JournalEventType::Done, "done"},                  {JournalEventType::Failed, "failed"},
    {JournalEventType::Stopped, "stopped"},            {JournalEventType::Abandoned, "abandoned"},
    {JournalEventType::Reset, "reset"},                {JournalEventType::SweepEnded, "sweep-ended"},
};
}  // namespace

const char* journal_event_name(JournalEventType type) {
  for (const auto& [t, name] : kEventNames)
    if (t == type) return name;
  return "?";
}

JournalEventType parse_journal_event_type(const std::string& name) {
  std::string known;
  for (const auto& [type, n] : kEventNames) {
    if (name == n) return type;
    known += std::string(known.empty() ? "" : ", ") + n;
  }
  throw_data("unknown journal event '" + name + "' (known: " + known + ")");
}

std::string encode_journal_event(const JournalEvent& e) {
  nlohmann::ordered_json j;
  j["event"] = journal_event_name(e.type);
  j["time"] = e.time;
  if (!e.run_id.empty()) j["run"] = e.run_id;
  if (e.attempt) j["attempt"] = e.attempt;
  if (!e.run_id.empty()) j["rank"] = e.rank;
  if (e.seconds > 0) j["seconds"] = e.seconds;
  if (!e.run_dir.empty()) j["run_dir"] = e.run_dir;
  if (!e.metrics_json.empty()) j["metrics"] = nlohmann::ordered_json::parse(e.metrics_json);
  if (!e.error.empty()) j["error"] = e.error;
  if (e.signal) j["signal"] = e.signal;
  if (!e.detail.empty()) j["detail"] = e.detail;
  return json_text(j);
}

namespace {

// `key` of a decoded line, or `fallback` when absent; a value of another kind names the field
// (nlohmann's own type error would read like a torn line).
template <typename T>
T field(const nlohmann::ordered_json& j, const char* event, const char* key, T fallback) {
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  try {
    return it->template get<T>();
  } catch (const nlohmann::json::exception&) {
    const char* expected = std::is_same_v<T, std::string> ? "a string" : "a number";
    throw InvalidJournalEvent(std::string(event) + " event: '" + key + "': expected " + expected + ", got " +
                              it->type_name() + "; event skipped");
  }
}

bool is_run_event(JournalEventType type) {
  return type != JournalEventType::SweepStarted && type != JournalEventType::SweepEnded;
}

}  // namespace

JournalEvent decode_journal_event(const std::string& line) {
  auto j = nlohmann::ordered_json::parse(line);  // throws on a torn line
  if (!j.is_object() || !j.contains("event")) throw std::runtime_error("not a journal event");
  if (!j["event"].is_string()) throw InvalidJournalEvent("'event' is not a name; line skipped");
  JournalEvent e;
  e.type = parse_journal_event_type(j["event"].get<std::string>());
  const char* name = journal_event_name(e.type);
  e.time = field<std::string>(j, name, "time", "");
  e.run_id = field<std::string>(j, name, "run", "");
  e.attempt = field(j, name, "attempt", 0);
  e.rank = field(j, name, "rank", 0);
  e.seconds = field(j, name, "seconds", 0.0);
  e.run_dir = field<std::string>(j, name, "run_dir", "");
  e.error = field<std::string>(j, name, "error", "");
  e.signal = field(j, name, "signal", 0);
  e.detail = field<std::string>(j, name, "detail", "");
  // A run event without its run id belongs to no run: kept, it would be ignored without a
  // word (a done run missing from the results).
  if (is_run_event(e.type) && e.run_id.empty())
    throw InvalidJournalEvent(std::string(name) + " event without 'run' (the run id); event skipped");
  if (j.contains("metrics")) {
    // Results rows and tables read the metrics as an object; anything else would leave the
    // run done with no numbers. Skipped, the run is assigned again and reports them anew.
    if (!j["metrics"].is_object())
      throw InvalidJournalEvent(std::string(name) + " event: 'metrics' is " + j["metrics"].type_name() +
                                ", not a JSON object; event skipped (the run will report its metrics again)");
    e.metrics_json = json_text(j["metrics"]);
  }
  return e;
}

Journal::Journal(std::string path) : path_(std::move(path)) {
  const auto parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  check_input_file_if_present(path_, "a sweep journal");  // opening a pipe would block
  refuse_symlink(path_, "a sweep journal");
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_io(path_ + ": cannot open the sweep journal: " + std::strerror(errno));
  const auto size = std::filesystem::file_size(path_);
  if (size > 0) {
    std::ifstream in(path_, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(size - 1));
    if (in.get() != '\n') write_all(fd_, "\n", path_);
  }
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

void Journal::append(JournalEvent event) {
  if (event.time.empty()) event.time = utc_now_iso8601();
  write_all(fd_, encode_journal_event(event) + "\n", path_);
  if (::fsync(fd_) != 0) throw_io(path_ + ": fsync failed: " + std::strerror(errno));
}

std::vector<JournalEvent> Journal::read(const std::string& path, int* skipped, std::vector<std::string>* invalid) {
  std::vector<JournalEvent> events;
  if (skipped) *skipped = 0;
  if (invalid) invalid->clear();
  if (!check_input_file_if_present(path, "a sweep journal")) return events;  // nothing has happened yet
  std::ifstream in(path, std::ios::binary);
  std::string line;
  for (int number = 1; read_bounded_line(in, line, path + ":" + std::to_string(number)); ++number) {
    if (line.empty()) continue;
    try {
      events.push_back(decode_journal_event(line));
    } catch (const Error& e) {
      throw_data(path + ":" + std::to_string(number) + ": " + e.what());
    } catch (const InvalidJournalEvent& e) {
      // Every reader warns (sweep run, status, report): never dropped without a word.
      const std::string why = path + ":" + std::to_string(number) + ": " + e.what();
      log()->warn("[sweep] {}", why);
      if (invalid) invalid->push_back(why);
    } catch (const std::exception&) {
      if (skipped) ++*skipped;
    }
  }
  return events;
}

}  // namespace difffit
