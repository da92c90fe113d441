#include "orchestrator/sweep_plan.h"

#include <algorithm>

#include "common/error.h"
#include "worker/run/experiment_config.h"

namespace difffit {
namespace {

class Planner {
 public:
  explicit Planner(const SweepConfig& config) : config_(config) {
    inherited_ = config.overrides;
    // The sweep's output folder holds every run, bases included.
    inherited_.push_back("output_dir=" + config.output_dir);
  }

  SweepPlan take() { return std::move(plan_); }

  void add_grid(const SweepGrid& grid) {
    for (const auto& axis : grid.axes) {
      if (std::find(plan_.axis_names.begin(), plan_.axis_names.end(), axis.name) == plan_.axis_names.end()) {
        plan_.axis_names.push_back(axis.name);
      }
    }
    std::vector<size_t> order = grid.order;
    if (order.empty())
      for (size_t a = 0; a < grid.axes.size(); ++a) order.push_back(a);
    std::vector<size_t> choice(grid.axes.size(), 0);
    while (true) {
      GridMembership membership{grid.name, {}};
      Overrides overrides = grid.overrides;
      std::string name = grid.name;
      for (size_t a = 0; a < grid.axes.size(); ++a) {
        const AxisValue& value = grid.axes[a].values[choice[a]];
        membership.labels.emplace_back(grid.axes[a].name, value.label);
        overrides.insert(overrides.end(), value.overrides.begin(), value.overrides.end());
        name += "." + value.label;
      }
      overrides.push_back("name=" + name);
      add_run(grid.experiment, overrides, &membership);
      // Next combination in the grid's start order, its last axis fastest.
      size_t k = order.size();
      while (k > 0) {
        const size_t a = order[k - 1];
        if (++choice[a] < grid.axes[a].values.size()) break;
        choice[a] = 0;
        --k;
      }
      if (k == 0) break;
    }
  }

 private:
  static std::string describe(const GridMembership& m) {
    std::string out;
    for (const auto& [axis, label] : m.labels) out += (out.empty() ? "" : ",") + axis + "=" + label;
    return "(" + out + ")";
  }

  // Adds (or finds) the run; returns its index. Its "run:" base is planned first.
  size_t add_run(const std::string& experiment, const Overrides& overrides, const GridMembership* membership) {
    ExperimentLoadOptions options;
    options.inherited = inherited_;
    options.require_base_done = false;
    ExperimentConfig config = load_experiment(experiment, overrides, options);
    std::vector<size_t> depends_on;
    if (!config.base_experiment.empty()) {
      if (++depth_ > 16) throw_config(experiment + ": base_checkpoint: run: chain deeper than 16 (a cycle?)");
      depends_on.push_back(add_run(config.base_experiment, {}, nullptr));
      --depth_;
    }
    const std::string id = config.run_id();
    auto found = plan_.index_of.find(id);
    if (found == plan_.index_of.end()) {
      PlannedRun run;
      run.run_id = id;
      run.name = config.name;
      run.run_dir = config.run_dir();
      run.method = config.method.name();
      run.request.index = static_cast<int64_t>(plan_.runs.size());
      run.request.experiment = experiment;
      run.request.inherited = inherited_;
      run.request.overrides = overrides;
      run.request.expected_run_id = id;
      run.request.time_limit_s = config_.run_time_limit_s;
      run.depends_on = depends_on;
      found = plan_.index_of.emplace(id, plan_.runs.size()).first;
      plan_.runs.push_back(std::move(run));
    }
    if (membership) {
      // Two cells of one grid that are the same run: an axis whose values change nothing
      // (e.g. a `set` without {value}); its table would show one run under several labels.
      for (const GridMembership& other : plan_.runs[found->second].memberships) {
        if (other.grid != membership->grid) continue;
        throw_config(config_.source + ": grid " + membership->grid + ": cells " + describe(other) + " and " +
                     describe(*membership) + " are the same run (" + id +
                     "); an axis's values must change the run (does its `set` use {value}?)");
      }
      plan_.runs[found->second].memberships.push_back(*membership);
    }
    return found->second;
  }

  const SweepConfig& config_;
  Overrides inherited_;
  SweepPlan plan_;
  int depth_ = 0;
};

}  // namespace

SweepPlan plan_sweep(const SweepConfig& config) {
  Planner planner(config);
  for (const auto& grid : config.grids) planner.add_grid(grid);
  return planner.take();
}

}  // namespace difffit
