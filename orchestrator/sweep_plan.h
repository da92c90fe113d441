// Sweep expansion, pure: the sweep file becomes an ordered list of distinct runs
// (content-addressed by run id), each with the grids it belongs to and the runs it
// must wait for (a fine-tuning run waits for the pre-training run it starts from).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "orchestrator/sweep_config.h"
#include "worker/run/run_request.h"

namespace difffit {

struct GridMembership {
  std::string grid;
  std::vector<std::pair<std::string, std::string>> labels;  // (axis, label), in axis order
};

struct PlannedRun {
  std::string run_id;
  std::string name;                        // human-readable folder prefix
  std::string run_dir;
  std::string method;                      // the method's name (full, difffit, ...)
  RunRequest request;                      // what a worker is sent (index and expected id filled in)
  std::vector<GridMembership> memberships;  // empty for a base run that only feeds others
  std::vector<size_t> depends_on;          // indices of runs that must be done first
};

struct SweepPlan {
  std::vector<PlannedRun> runs;           // dependencies come before the runs that need them
  std::vector<std::string> axis_names;    // every axis of every grid, first appearance first
  std::map<std::string, size_t> index_of;  // run id -> index
};

SweepPlan plan_sweep(const SweepConfig& config);

}  // namespace difffit
