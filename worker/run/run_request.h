// What a sweep asks a worker to run, and what the worker reports back. Plain values,
// so they travel as messages between ranks (orchestrator/messages.h).
#pragma once

#include <string>
#include <vector>

namespace difffit {

struct RunRequest {
  int64_t index = -1;                  // the run's position in the sweep plan
  std::string experiment;              // experiment YAML file
  std::vector<std::string> inherited;  // overrides applied to it and to its "run:" base (the sweep's `set`)
  std::vector<std::string> overrides;  // this run's own overrides (grid labels, name, output_dir)
  std::string expected_run_id;         // the planned id; a mismatch means the files changed after planning
  int attempt = 1;                     // 1 for the first try
  double time_limit_s = 0;             // per attempt, checked every training step (0 = none)
};

enum class RunStatus { Done, Failed, Stopped };

struct RunReport {
  int64_t index = -1;
  RunStatus status = RunStatus::Failed;
  int attempt = 1;
  std::string run_id;
  std::string run_dir;
  std::string metrics_json;  // the run's metrics.json when done
  std::string error;         // why it failed
  int signal = 0;            // the stop signal when stopped
  double seconds = 0;        // wall time of this attempt
};

}  // namespace difffit
