// Progress for long work: steps done, rate, ETA and a free-form status (loss).
// On a terminal it redraws one line; otherwise (logs, SLURM) it prints a line at
// most every `min_interval_s` seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace difffit {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, int64_t start = 0, double min_interval_s = 10.0);
  // `done` steps so far; `status` is shown after the rate (e.g. "loss 0.0831").
  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");
  double rate() const;  // steps per second since construction

  static std::string format_duration(double seconds);  // "1:02:03" / "04:05"

 private:
  void draw(int64_t done, const std::string& status, bool final_line);

  std::string label_;
  int64_t total_, start_;
  double min_interval_s_;
  bool terminal_;
  std::chrono::steady_clock::time_point begin_, last_draw_;
  int64_t last_done_ = 0;
  int64_t last_drawn_ = -1;
};

}  // namespace difffit
