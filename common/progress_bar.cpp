#include "common/progress_bar.h"

#include <unistd.h>

#include <cstdio>

#include "common/logging.h"

namespace difffit {

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t start, double min_interval_s)
    : label_(std::move(label)),
      total_(total),
      start_(start),
      min_interval_s_(min_interval_s),
      terminal_(::isatty(STDERR_FILENO) == 1),
      begin_(std::chrono::steady_clock::now()),
      last_draw_(begin_),
      last_done_(start) {}

double ProgressBar::rate() const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin_).count();
  return elapsed > 0 ? static_cast<double>(last_done_ - start_) / elapsed : 0.0;
}

std::string ProgressBar::format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(text, sizeof text, "%02lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  }
  return text;
}

void ProgressBar::update(int64_t done, const std::string& status) {
  last_done_ = done;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (terminal_ ? 0.1 : min_interval_s_) && done < total_) return;
  last_draw_ = now;
  draw(done, status, false);
  last_drawn_ = done;
}

void ProgressBar::finish(const std::string& status) {
  // A log (non-terminal) already has the final line when update() drew the last step.
  if (!terminal_ && last_drawn_ == last_done_ && status.empty()) return;
  draw(last_done_, status, true);
}

void ProgressBar::draw(int64_t done, const std::string& status, bool final_line) {
  const double r = rate();
  const double eta = r > 0 ? static_cast<double>(total_ - done) / r : -1;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin_).count();
  char numbers[160];
  std::snprintf(numbers, sizeof numbers, "%lld/%lld %.2f it/s elapsed %s ETA %s", static_cast<long long>(done),
                static_cast<long long>(total_), r, format_duration(elapsed).c_str(),
                final_line ? "00:00" : format_duration(eta).c_str());
  if (terminal_) {
    const int width = 24;
    int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    std::string bar(filled, '=');
    bar.resize(width, ' ');
    std::fprintf(stderr, "\r%s [%s] %s %s\033[K%s", label_.c_str(), bar.c_str(), numbers, status.c_str(),
                 final_line ? "\n" : "");
    std::fflush(stderr);
  } else {
    log()->info("{} {} {}", label_, numbers, status);
  }
}

}  // namespace difffit
