#include "orchestrator/sweep_config.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "common/json_text.h"
#include "common/names.h"
#include "common/platform.h"
#include "common/yaml_fields.h"

namespace difffit {
namespace {

const std::set<std::string> kSweepScalars = {"sweep", "experiment", "output_dir", "threads", "max_attempts",
                                             "run_time_limit", "heartbeat_timeout", "heartbeat_interval",
                                             "ranks_per_run"};

// A `set:` is a handful of fields; YAML aliases can make a few hundred bytes expand to
// billions of entries, so the walk stops at this many.
constexpr size_t kMaxSetEntries = 10000;

// `set:` mappings may nest ({train: {steps: 4}}) or use dotted keys ({train.steps: 4}).
void flatten_into(const YAML::Node& node, const std::string& prefix, const std::string& where, Overrides& out,
                  size_t& entries) {
  if (!node.IsMap()) throw_config(where + ": expected a mapping of field: value");
  for (const auto& item : node) {
    if (++entries > kMaxSetEntries)
      throw_config(where + ": more than " + std::to_string(kMaxSetEntries) + " fields (YAML aliases expanding?)");
    const std::string key = prefix + item.first.as<std::string>();
    // Every run of a sweep lives in the sweep's own output_dir (its state and results find
    // them there): a grid or axis may not move them.
    if (key == "output_dir")
      throw_config(where + ": output_dir: the sweep's runs live in its own output_dir (the top-level field)");
    if (item.second.IsMap()) {
      flatten_into(item.second, key + ".", where, out, entries);
    } else if (item.second.IsScalar() || item.second.IsNull()) {
      out.push_back(key + "=" + (item.second.IsNull() ? "" : item.second.Scalar()));
    } else {
      throw_config(where + ": " + key + ": expected a scalar value");
    }
  }
}

Overrides flatten_overrides(const YAML::Node& node, const std::string& where) {
  Overrides out;
  size_t entries = 0;
  flatten_into(node, "", where, out, entries);
  return out;
}

Overrides read_overrides(const YamlSection& section, const std::string& key) {
  return section.has(key) ? flatten_overrides(section.node()[key], section.where(key)) : Overrides{};
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

SweepAxis parse_axis(const YamlSection& axis) {
  axis.require_known_keys({"name", "values", "set"});
  SweepAxis out;
  axis.read("name", out.name);
  if (out.name.empty()) throw_config(axis.where("name") + ": missing");
  if (!valid_utf8(out.name)) throw_config(axis.where("name") + ": not valid UTF-8 (it names a results column)");
  if (!usable_column_name(out.name))
    throw_config(axis.where("name") + ": '" + out.name + "' cannot name a results column (no '/', not '.')");
  if (std::find(kRunColumns.begin(), kRunColumns.end(), out.name) != kRunColumns.end())
    throw_config(axis.where("name") + ": '" + out.name + "' is reserved for a results column");
  const Overrides templ = read_overrides(axis, "set");
  if (!axis.has("values")) throw_config(axis.where("values") + ": missing");
  const YAML::Node values = axis.node()["values"];
  std::set<std::string> labels;  // not a scan per label: a long axis stays linear
  auto add = [&](const std::string& label, const Overrides& own) {
    if (label.empty()) throw_config(axis.where("values") + ": empty label");
    if (!usable_in_folder_name(label))
      throw_config(axis.where("values") + ": '" + label +
                   "' cannot be part of a run folder's name (no '/', '\\' or control characters)");
    if (!labels.insert(label).second) throw_config(axis.where("values") + ": '" + label + "' appears twice");
    AxisValue value{label, {}};
    for (const auto& o : templ) value.overrides.push_back(replace_all(o, "{value}", label));
    value.overrides.insert(value.overrides.end(), own.begin(), own.end());
    out.values.push_back(std::move(value));
  };
  if (values.IsSequence()) {
    for (const auto& v : values) {
      if (!v.IsScalar()) throw_config(axis.where("values") + ": a list of labels must hold scalars");
      add(v.Scalar(), {});
    }
  } else if (values.IsMap()) {
    for (const auto& v : values) {
      const std::string where = axis.where("values") + "." + v.first.Scalar();
      add(v.first.Scalar(), v.second.IsNull() ? Overrides{} : flatten_overrides(v.second, where));
    }
  } else {
    throw_config(axis.where("values") + ": expected a list of labels or a mapping label: {field: value}");
  }
  if (out.values.empty()) throw_config(axis.where("values") + ": no values");
  const bool uses_value =
      std::any_of(templ.begin(), templ.end(), [](const std::string& o) { return o.find("{value}") != std::string::npos; });
  if (values.IsSequence() && !uses_value) {
    throw_config(axis.where("set") + ": a list of labels needs a `set` that uses {value}");
  }
  return out;
}

// `order: [axis, ...]`: those axes outermost, in that order, then the others in file order.
std::vector<size_t> parse_order(const YamlSection& grid, const std::vector<SweepAxis>& axes) {
  std::vector<std::string> names;
  grid.read("order", names);
  std::vector<size_t> order;
  for (const std::string& name : names) {
    const auto axis = std::find_if(axes.begin(), axes.end(), [&](const SweepAxis& a) { return a.name == name; });
    if (axis == axes.end()) throw_config(grid.where("order") + ": no axis '" + name + "' in this grid");
    const size_t index = static_cast<size_t>(axis - axes.begin());
    if (std::find(order.begin(), order.end(), index) != order.end())
      throw_config(grid.where("order") + ": axis '" + name + "' twice");
    order.push_back(index);
  }
  for (size_t a = 0; a < axes.size(); ++a)
    if (std::find(order.begin(), order.end(), a) == order.end()) order.push_back(a);
  return order;
}

SweepGrid parse_grid(const YamlSection& grid, const std::string& file, const std::string& grid_path) {
  grid.require_known_keys({"name", "experiment", "set", "axes", "order"});
  SweepGrid out;
  grid.read("name", out.name);
  if (out.name.empty()) throw_config(grid.where("name") + ": missing");
  if (!valid_utf8(out.name)) throw_config(grid.where("name") + ": not valid UTF-8");
  if (!usable_folder_name(out.name))
    throw_config(grid.where("name") + ": '" + out.name + "' cannot begin a run folder's name (" + kFolderNameRule + ")");
  grid.read("experiment", out.experiment);
  out.overrides = read_overrides(grid, "set");
  if (grid.has("axes")) {
    const YAML::Node axes = grid.node()["axes"];
    if (!axes.IsSequence()) throw_config(grid.where("axes") + ": expected a list of axes");
    for (size_t i = 0; i < axes.size(); ++i) {
      out.axes.push_back(parse_axis(YamlSection(axes[i], file, grid_path + ".axes[" + std::to_string(i) + "]")));
    }
  }
  std::set<std::string> names;
  for (const auto& axis : out.axes) {
    if (!names.insert(axis.name).second) throw_config(grid.where("axes") + ": axis '" + axis.name + "' twice");
  }
  out.order = parse_order(grid, out.axes);
  return out;
}

// The grid's cells (the product of its axis lengths), or an error naming the grid once they
// pass kMaxSweepRuns: checked factor by factor, so the product never overflows.
uint64_t count_cells(const SweepGrid& grid, const std::string& where) {
  uint64_t cells = 1;
  std::string shape;
  for (const auto& axis : grid.axes) shape += (shape.empty() ? "" : " x ") + std::to_string(axis.values.size());
  for (const auto& axis : grid.axes) {
    if (axis.values.size() > kMaxSweepRuns / cells)
      throw_config(where + " ('" + grid.name + "'): " + shape + " cells, more than the " + std::to_string(kMaxSweepRuns) +
                   " runs a sweep may plan; split it into smaller sweeps");
    cells *= axis.values.size();
  }
  return cells;
}

// Applies "--set" overrides: sweep fields directly, anything else joins the sweep's `set`.
void apply_sweep_overrides(YAML::Node root, const Overrides& overrides, Overrides& run_overrides) {
  for (const auto& text : overrides) {
    const auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0) throw_usage("--set '" + text + "': expected key=value");
    const std::string key = text.substr(0, eq);
    if (kSweepScalars.count(key)) {
      root[key] = text.substr(eq + 1);
    } else {
      run_overrides.push_back(text);
    }
  }
}

std::string override_key(const std::string& text) { return text.substr(0, text.find('=')); }

// Whether one key is the other or inside it ("method" and "method.name").
bool keys_overlap(const std::string& a, const std::string& b) {
  const std::string& shorter = a.size() <= b.size() ? a : b;
  const std::string& longer = a.size() <= b.size() ? b : a;
  return longer.compare(0, shorter.size(), shorter) == 0 && (longer.size() == shorter.size() || longer[shorter.size()] == '.');
}

// A `--set` for the runs is applied before a grid's own settings: a key that the grid sets,
// or that every value of one of its axes sets (or the run name, which the plan gives every
// run), would change none of the grid's runs, only those outside it (a `run:` base),
// silently. A key only some values set is fine: it holds for the other cells.
void refuse_overrides_a_grid_sets(const Overrides& command_line, const SweepGrid& grid) {
  for (const std::string& text : command_line) {
    const std::string key = override_key(text);
    auto refuse = [&](const std::string& where) {
      throw_usage("--set " + text + ": grid '" + grid.name + "' sets " + key + " itself for every run (" + where +
                  "), after --set; change it in the sweep file");
    };
    if (keys_overlap(key, "name")) refuse("each run's name is its grid and labels");
    for (const std::string& own : grid.overrides)
      if (keys_overlap(key, override_key(own))) refuse("its set: " + own);
    for (const SweepAxis& axis : grid.axes) {
      const auto sets_key = [&](const AxisValue& value) {
        return std::any_of(value.overrides.begin(), value.overrides.end(),
                           [&](const std::string& own) { return keys_overlap(key, override_key(own)); });
      };
      if (!axis.values.empty() && std::all_of(axis.values.begin(), axis.values.end(), sets_key))
        refuse("every value of axis '" + axis.name + "'");
    }
  }
}

}  // namespace

std::string SweepConfig::state_dir() const { return (std::filesystem::path(output_dir) / name).string(); }

SweepConfig load_sweep(const std::string& path, const Overrides& overrides) {
  YamlSection root = YamlSection::load_file(path);
  Overrides extra;
  apply_sweep_overrides(root.node(), overrides, extra);
  std::set<std::string> known = kSweepScalars;
  known.insert({"set", "grids"});
  root.require_known_keys(known);
  SweepConfig config;
  config.source = path;
  root.read("sweep", config.name);
  if (!usable_folder_name(config.name)) {
    throw_config(root.where("sweep") + ": '" + config.name + "' cannot name the state folder inside output_dir (" +
                 kFolderNameRule + ")");
  }
  if (!valid_utf8(config.name)) throw_config(root.where("sweep") + ": not valid UTF-8");
  root.read("experiment", config.experiment);
  root.read("output_dir", config.output_dir);
  root.read("threads", config.threads);
  root.read("max_attempts", config.max_attempts);
  root.read("ranks_per_run", config.ranks_per_run);
  root.read("run_time_limit", config.run_time_limit_s);
  root.read("heartbeat_timeout", config.heartbeat_timeout_s);
  root.read("heartbeat_interval", config.heartbeat_interval_s);
  config.overrides = read_overrides(root, "set");
  config.overrides.insert(config.overrides.end(), extra.begin(), extra.end());
  if (config.threads < 1 || config.threads > kMaxComputeThreads)
    throw_config(root.where("threads") + ": must be in 1.." + std::to_string(kMaxComputeThreads));
  if (config.max_attempts < 1) throw_config(root.where("max_attempts") + ": must be at least 1");
  if (config.ranks_per_run < 1) throw_config(root.where("ranks_per_run") + ": must be at least 1");
  if (config.run_time_limit_s < 0) throw_config(root.where("run_time_limit") + ": must be >= 0 seconds");
  // The workers time their heartbeats in the clock's integer ticks: bounded both ways.
  if (!(config.heartbeat_interval_s >= 0.01 && config.heartbeat_interval_s <= 3600))
    throw_config(root.where("heartbeat_interval") + ": must be in 0.01..3600 seconds");
  if (config.heartbeat_timeout_s != 0 && config.heartbeat_timeout_s < 3 * config.heartbeat_interval_s) {
    throw_config(root.where("heartbeat_timeout") + ": must be 0 (off) or at least 3 heartbeat intervals");
  }
  if (!root.has("grids") || !root.node()["grids"].IsSequence() || root.node()["grids"].size() == 0) {
    throw_config(root.where("grids") + ": expected a non-empty list of grids");
  }
  const YAML::Node grids = root.node()["grids"];
  std::set<std::string> names;
  uint64_t cells = 0;  // over every grid, at most kMaxSweepRuns each: no overflow
  for (size_t i = 0; i < grids.size(); ++i) {
    const std::string grid_path = "grids[" + std::to_string(i) + "]";
    SweepGrid grid = parse_grid(YamlSection(grids[i], path, grid_path), path, grid_path);
    if (!names.insert(grid.name).second) throw_config(path + ": grids: '" + grid.name + "' appears twice");
    cells += count_cells(grid, path + ": " + grid_path);
    if (cells > kMaxSweepRuns)
      throw_config(path + ": grids: " + std::to_string(cells) + " cells up to grid '" + grid.name + "', more than the " +
                   std::to_string(kMaxSweepRuns) + " runs a sweep may plan; split it into smaller sweeps");
    refuse_overrides_a_grid_sets(extra, grid);
    if (grid.experiment.empty()) grid.experiment = config.experiment;
    if (grid.experiment.empty()) {
      throw_config(path + ": grids[" + std::to_string(i) + "]: no experiment (set `experiment` for the sweep or grid)");
    }
    config.grids.push_back(std::move(grid));
  }
  return config;
}

}  // namespace difffit
