#include "orchestrator/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <utility>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json_text.h"

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

JournalEvent decode_journal_event(const std::string& line) {
  auto j = nlohmann::ordered_json::parse(line);  // throws on a torn line
  if (!j.is_object() || !j.contains("event")) throw std::runtime_error("not a journal event");
  JournalEvent e;
  e.type = parse_journal_event_type(j.at("event").get<std::string>());
  e.time = j.value("time", "");
  e.run_id = j.value("run", "");
  e.attempt = j.value("attempt", 0);
  e.rank = j.value("rank", 0);
  e.seconds = j.value("seconds", 0.0);
  e.run_dir = j.value("run_dir", "");
  if (j.contains("metrics")) e.metrics_json = json_text(j["metrics"]);
  e.error = j.value("error", "");
  e.signal = j.value("signal", 0);
  e.detail = j.value("detail", "");
  return e;
}

Journal::Journal(std::string path) : path_(std::move(path)) {
  const auto parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
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

std::vector<JournalEvent> Journal::read(const std::string& path, int* skipped) {
  std::vector<JournalEvent> events;
  if (skipped) *skipped = 0;
  std::ifstream in(path);
  if (!in) return events;  // no journal yet: nothing has happened
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      events.push_back(decode_journal_event(line));
    } catch (const Error& e) {
      throw_data(path + ":" + std::to_string(number) + ": " + e.what());
    } catch (const std::exception&) {
      if (skipped) ++*skipped;
    }
  }
  return events;
}

}  // namespace difffit
