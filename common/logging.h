// One rank-aware logger for the whole program. Messages carry the MPI rank and
// a [module] prefix chosen at the call site: log()->info("[model] ...").
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace difffit {

struct LoggingOptions {
  int rank = 0;                // MPI rank shown in every line
  std::string level = "info";  // trace|debug|info|warn|error|off
  std::string log_file;        // also write to this file when not empty (one per rank)
  bool quiet_non_zero_ranks = true;  // ranks > 0 print warnings and worse to the terminal
};

// Replaces the default logger; safe to call more than once.
void init_logging(const LoggingOptions& options);

// The process-wide logger (a terminal logger until init_logging is called).
std::shared_ptr<spdlog::logger> log();

// Also writes the log to `path` (appending) while alive, keeping the rank's own sinks:
// a run's run.log inside a sweep worker whose rank log continues.
class ScopedLogFile {
 public:
  explicit ScopedLogFile(const std::string& path);
  ~ScopedLogFile();
  ScopedLogFile(const ScopedLogFile&) = delete;
  ScopedLogFile& operator=(const ScopedLogFile&) = delete;

 private:
  std::shared_ptr<spdlog::logger> logger_;
  spdlog::sink_ptr sink_;
};

}  // namespace difffit
