#include "common/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <vector>

#include "common/atomic_file.h"
#include "common/error.h"

namespace difffit {
namespace {

std::shared_ptr<spdlog::logger>& logger_slot() {
  static std::shared_ptr<spdlog::logger> logger;
  return logger;
}

spdlog::level::level_enum parse_level(const std::string& name) {
  auto level = spdlog::level::from_str(name);
  if (level == spdlog::level::off && name != "off") throw_usage("unknown log level '" + name + "'");
  return level;
}

}  // namespace

void init_logging(const LoggingOptions& options) {
  std::vector<spdlog::sink_ptr> sinks;
  auto terminal = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto level = parse_level(options.level);
  terminal->set_level(options.rank > 0 && options.quiet_non_zero_ranks
                          ? std::max(level, spdlog::level::warn)
                          : level);
  sinks.push_back(terminal);
  if (!options.log_file.empty()) {
    refuse_symlink(options.log_file, "a log");
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.log_file));
    } catch (const spdlog::spdlog_ex& e) {
      throw_io("cannot open log file '" + options.log_file + "': " + e.what());
    }
  }
  auto logger = std::make_shared<spdlog::logger>("difffit", sinks.begin(), sinks.end());
  logger->set_level(level);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [rank " + std::to_string(options.rank) + "] %^%l%$ %v");
  logger->flush_on(spdlog::level::warn);
  logger_slot() = logger;
}

std::shared_ptr<spdlog::logger> log() {
  auto& logger = logger_slot();
  if (!logger) init_logging(LoggingOptions{});
  return logger;
}

ScopedLogFile::ScopedLogFile(const std::string& path) : logger_(log()) {
  refuse_symlink(path, "a log");
  try {
    sink_ = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
  } catch (const spdlog::spdlog_ex& e) {
    throw_io("cannot open log file '" + path + "': " + e.what());
  }
  sink_->set_level(logger_->level());
  sink_->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  logger_->sinks().push_back(sink_);
}

ScopedLogFile::~ScopedLogFile() {
  auto& sinks = logger_->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
}

}  // namespace difffit
