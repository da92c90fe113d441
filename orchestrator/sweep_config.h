// A sweep file (YAML): one experiment file as the template, and grids whose axes
// vary it by overrides. Parsed and validated once; planning (sweep_plan.h) expands it.
//
//   sweep: mini-study                  # state lives in <output_dir>/<sweep>/
//   experiment: experiments/mini-finetune.yaml
//   set: {train.steps: 400}            # every run and its "run:" base
//   grids:
//     - name: table1
//       axes:
//         - name: dataset
//           values: [new-classes, inverted]
//           set: {data.train: "data/mini/{value}/train.h5"}
//         - name: method
//           values: {full: {method.name: full}, difffit: {method.name: difffit}}
//       order: [method]                # optional: runs start method by method
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace difffit {

using Overrides = std::vector<std::string>;  // "a.b=value", applied in order

struct AxisValue {
  std::string label;    // shown in tables and run names
  Overrides overrides;  // the axis' `set` with {value} replaced, then the value's own overrides
};

struct SweepAxis {
  std::string name;               // a results column (dataset, method, placement, ...)
  std::vector<AxisValue> values;  // in file order
};

struct SweepGrid {
  std::string name;             // a results column value; tables select one grid
  std::string experiment;       // template for this grid (default: the sweep's)
  Overrides overrides;          // the grid's own `set`
  std::vector<SweepAxis> axes;  // cartesian product; names and labels in this order
  // The order its runs are started in: indices into `axes`, outermost first (`order:` names
  // some axes, the rest follow in file order; empty: file order). Run names and ids do not
  // depend on it.
  std::vector<size_t> order;
};

// Planning loads a template and hashes a run id per cell: a sweep's size is checked before
// expansion, so three long axes are a config error rather than a planner that never ends.
constexpr uint64_t kMaxSweepRuns = 100000;

// The columns every results row has besides its axes and metrics (result_rows.cpp): no axis
// may take their names.
inline constexpr std::array<const char*, 6> kRunColumns = {"grid", "run_id", "name", "run_dir", "attempt",
                                                           "run_seconds"};

struct SweepConfig {
  std::string name;                // required; names the state folder
  std::string source;              // the sweep file
  std::string experiment;          // the default template experiment
  std::string output_dir = "runs";  // runs and the sweep state go here (overrides every run's output_dir)
  Overrides overrides;             // the sweep's `set` (+ --set), applied to every run and its base
  std::vector<SweepGrid> grids;
  int threads = 1;                 // intra-op threads per rank (one rank per core suits a CPU sweep)
  int max_attempts = 3;            // a run that failed this often is given up (until --retry-failed)
  int ranks_per_run = 1;           // worker ranks that train each run together (data parallel)
  double run_time_limit_s = 0;     // per attempt, 0 = none
  double heartbeat_timeout_s = 600;  // a busy worker silent this long is presumed hung
  double heartbeat_interval_s = 10;  // how often a busy worker reports

  std::string state_dir() const;   // output_dir/name
};

// `overrides` ("a.b=value") are applied to the sweep file itself first (e.g. --set max_attempts=1),
// except `set.KEY=value`, which adds to the sweep's `set`.
SweepConfig load_sweep(const std::string& path, const Overrides& overrides = {});

}  // namespace difffit
