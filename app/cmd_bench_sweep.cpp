// difffit bench sweep: what the coordinator costs per run, and how a sweep of tiny
// runs scales with the number of worker ranks. Each point launches a real sweep
// (`mpiexec -n W+1 difffit sweep run`, or one process for W = 0) on a synthetic
// dataset, times it end to end and reads the sweep's own summary.json. Prints JSON.
// --simulate: the workers answer every run at once (`sweep run --simulate-runs`), so
// runs finish together as fast as the coordinator takes them; points over --sizes show
// how the coordinator's time and memory per run grow with the sweep's size.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_text.h"

namespace difffit {
namespace {

namespace fs = std::filesystem;

std::string self_binary() { return fs::read_symlink("/proc/self/exe").string(); }

int shell(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<int> parse_counts(const std::string& text, const std::string& flag) {
  std::vector<int> counts;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      counts.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw_usage(flag + ": expected a comma-separated list of integers, got '" + text + "'");
    }
    if (counts.back() < 0) throw_usage(flag + ": counts must be >= 0 (--workers 0 = one process, no MPI workers)");
  }
  if (counts.empty()) throw_usage(flag + ": empty list");
  return counts;
}

// A sweep of `runs` independent from-scratch runs (one axis: the seed), `steps` steps each.
std::string write_bench_sweep(const fs::path& dir, int runs, int steps, const std::string& data) {
  const fs::path experiment = dir / "bench-run.yaml";
  std::ofstream(experiment) << "name: bench\nseed: 0\n"
                               "model: {name: custom, depth: 2, hidden_size: 32, num_heads: 2, patch_size: 4,"
                               " input_size: 16, in_channels: 1, num_classes: 10}\n"
                               "method: {name: full}\ndata: {train: " << data << "}\n"
                               "train: {steps: " << steps << ", batch_size: 8, checkpoint_every: 0, log_every: 1000}\n"
                               "sample: {num: 0}\neval: {feature_net: none}\n";
  const fs::path sweep = dir / "bench-sweep.yaml";
  std::ofstream out(sweep);
  out << "sweep: bench\nexperiment: " << experiment.string() << "\nthreads: 1\nheartbeat_interval: 1\n"
      << "grids:\n  - name: seeds\n    axes:\n      - name: seed\n        set: {seed: \"{value}\"}\n        values: [";
  for (int i = 0; i < runs; ++i) out << (i ? ", " : "") << i + 1;
  out << "]\n";
  return sweep.string();
}

}  // namespace

int run_bench_sweep_command(int argc, char** argv) {
  po::options_description options("bench sweep options");
  options.add_options()
      ("workers", po::value<std::string>()->default_value("0,1,2"), "worker counts to time (0 = one process)")
      ("runs", po::value<int>()->default_value(8), "runs in the sweep")
      ("steps", po::value<int>()->default_value(2), "training steps per run (tiny: the point is the overhead)")
      ("simulate", "simulated runs (answered at once, no training): the coordinator's cost alone")
      ("sizes", po::value<std::string>()->default_value(""),
       "with --simulate: sweep sizes (runs) to time, e.g. 1000,3000,10000 (default: --runs)")
      ("mpiexec", po::value<std::string>()->default_value("mpiexec"), "MPI launcher");
  po::variables_map vm;
  if (!parse_command_line("bench sweep", "Coordinator overhead per run and scaling with worker ranks (JSON).", argc,
                          argv, options, vm)) {
    return 0;
  }
  const bool simulate = vm.count("simulate") > 0;
  const auto counts = parse_counts(vm["workers"].as<std::string>(), "--workers");
  const int steps = vm["steps"].as<int>();
  const std::vector<int> sizes = vm["sizes"].as<std::string>().empty()
                                     ? std::vector<int>{vm["runs"].as<int>()}
                                     : parse_counts(vm["sizes"].as<std::string>(), "--sizes");
  if (!simulate && sizes.size() > 1) throw_usage("--sizes needs --simulate (real runs: use --runs)");
  for (int runs : sizes)
    if (runs < 1) throw_usage("--runs and --sizes must be at least 1");
  if (steps < 1) throw_usage("--steps must be at least 1");
  const fs::path dir = fs::temp_directory_path() / ("difffit-bench-sweep-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string self = self_binary(), data = (dir / "data.h5").string();
  if (shell(self + " prepare --source fashion-mnist --split test --limit 256 --resolution 16 --output " + data +
            " > " + (dir / "prepare.log").string() + " 2>&1") != 0) {
    throw_io("bench sweep: preparing the data failed; see " + (dir / "prepare.log").string());
  }
  const std::string root = geteuid() == 0 ? " --allow-run-as-root" : "";

  nlohmann::ordered_json result;
  result["benchmark"] = simulate ? "sweep-simulated" : "sweep";
  result["runs"] = sizes.back();
  if (!simulate) result["steps_per_run"] = steps;
  result["points"] = nlohmann::json::array();
  double base_wall = 0;
  for (int runs : sizes) {
    const std::string sweep = write_bench_sweep(dir, runs, steps, data);
    for (int workers : counts) {
      const std::string name = "n" + std::to_string(runs) + "-w" + std::to_string(workers);
      const fs::path out = dir / name;
      const std::string launch =
          workers == 0 ? self : vm["mpiexec"].as<std::string>() + root + " --oversubscribe -n " +
                                    std::to_string(workers + 1) + " " + self;
      const std::string log = (dir / (name + ".log")).string();
      std::cerr << "[bench] sweep of " << runs << (simulate ? " simulated" : "") << " runs with " << workers
                << " worker(s)\n";
      const auto begin = std::chrono::steady_clock::now();
      const int code = shell(launch + " sweep run " + sweep + " --set output_dir=" + out.string() +
                             (simulate ? " --simulate-runs" : "") + " > " + log + " 2>&1");
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      if (code != 0) throw_io("bench sweep: the sweep with " + std::to_string(workers) + " worker(s) exited " +
                              std::to_string(code) + "; see " + log);
      const auto summary = nlohmann::json::parse(
          read_input_file((out / "bench" / "summary.json").string(), "a sweep summary", kJsonFileLimit));
      const int parallel = std::max(workers, 1);
      if (base_wall == 0) base_wall = wall;
      nlohmann::ordered_json point;
      point["runs"] = runs;
      point["workers"] = workers;
      point["ranks"] = workers == 0 ? 1 : workers + 1;
      point["wall_seconds"] = wall;
      point["runs_per_second"] = runs / wall;
      if (!simulate) {
        point["speedup_vs_first"] = base_wall / wall;
        point["mean_run_seconds"] = summary["run_seconds"].get<double>() / runs;
        // Everything that is not a worker running a run: launch, planning, dispatch, journal, idle tails.
        point["overhead_seconds_per_run"] = (wall * parallel - summary["run_seconds"].get<double>()) / runs;
      }
      point["coordinator_seconds_per_run"] = summary["coordinator_seconds_per_run"];
      point["journal_seconds"] = summary["journal_seconds"];
      point["snapshot_seconds"] = summary["snapshot_seconds"];
      point["snapshots_written"] = summary["snapshots_written"];
      point["sweep_wall_seconds"] = summary["wall_seconds"];  // the coordinator's own, from its start
      point["dispatch_gap_seconds_per_run"] = summary["dispatch_gap_seconds_per_run"];
      point["coordinator_peak_rss_bytes"] = summary["coordinator_peak_rss_bytes"];
      result["points"].push_back(point);
    }
  }
  fs::remove_all(dir);
  std::cout << json_text(result, 2) << std::endl;
  return 0;
}

}  // namespace difffit
