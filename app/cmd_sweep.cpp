// difffit sweep run|plan|status: a whole study from one sweep file, over MPI ranks
// (rank 0 coordinates, the others train) or in one process; resumable at any point.
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/communicator.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/platform.h"
#include "common/run_folder.h"
#include "common/stop_signals.h"
#include "orchestrator/sweep_job.h"
#include "orchestrator/sweep_ledger.h"
#include "orchestrator/sweep_plan.h"

namespace difffit {
namespace {

struct SweepArgs {
  std::string file;
  Overrides overrides;
  po::variables_map vm;
};

// Parses "<file> [--set k=v ...] + extra options"; false on --help.
bool parse_sweep_args(const std::string& command, const std::string& summary, int argc, char** argv,
                      po::options_description& options, SweepArgs& args) {
  options.add_options()
      ("sweep", po::value<std::string>()->required(), "sweep YAML file")
      ("set", po::value<std::vector<std::string>>()->composing(),
       "override: a sweep field (max_attempts=1, output_dir=DIR, ...) or, for anything else, a field of every "
       "run (train.steps=100); repeatable");
  po::positional_options_description positional;
  positional.add("sweep", 1);
  if (!parse_command_line(command, summary, argc, argv, options, args.vm, &positional)) return false;
  args.file = args.vm["sweep"].as<std::string>();
  if (args.vm.count("set")) args.overrides = args.vm["set"].as<std::vector<std::string>>();
  return true;
}

std::string labels_of(const PlannedRun& run) {
  if (run.memberships.empty()) return "(base of other runs)";
  std::string text;
  for (const auto& m : run.memberships) {
    text += (text.empty() ? "" : "; ") + m.grid;
    for (const auto& [axis, label] : m.labels) text += " " + axis + "=" + label;
  }
  return text;
}

int sweep_plan_command(int argc, char** argv) {
  po::options_description options("sweep plan options");
  SweepArgs args;
  if (!parse_sweep_args("sweep plan", "Lists the runs a sweep file expands to (ids, dependencies, grids).", argc,
                        argv, options, args)) {
    return 0;
  }
  const SweepConfig config = load_sweep(args.file, args.overrides);
  const SweepPlan plan = plan_sweep(config);
  std::cout << "sweep " << config.name << ": " << plan.runs.size() << " runs in " << config.grids.size()
            << " grid(s); state in " << config.state_dir() << "\n";
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const PlannedRun& run = plan.runs[i];
    std::cout << std::setw(4) << i << "  " << run.run_id << "  " << std::left << std::setw(36) << run.name
              << std::right << "  " << labels_of(run);
    if (!run.depends_on.empty()) {
      std::cout << "  (after";
      for (size_t d : run.depends_on) std::cout << " #" << d;
      std::cout << ")";
    }
    std::cout << "\n";
  }
  return 0;
}

std::string cell(const std::string& metrics_json, const char* key, int decimals) {
  if (metrics_json.empty()) return "";
  auto j = nlohmann::json::parse(metrics_json);
  if (!j.contains(key) || !j[key].is_number()) return "";
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << j[key].get<double>();
  return out.str();
}

int sweep_status_command(int argc, char** argv) {
  po::options_description options("sweep status options");
  SweepArgs args;
  if (!parse_sweep_args("sweep status", "Shows the state of every run of a sweep (from its journal).", argc, argv,
                        options, args)) {
    return 0;
  }
  const SweepConfig config = load_sweep(args.file, args.overrides);
  const SweepPlan plan = plan_sweep(config);
  RunStates states(plan, config.max_attempts);
  const std::string journal = SweepFolder{config.state_dir()}.journal();
  states.apply_all(Journal::read(journal));
  std::cout << std::left << std::setw(5) << "#" << std::setw(9) << "state" << std::setw(9) << "attempts"
            << std::setw(38) << "name" << std::setw(18) << "run id" << std::setw(10) << "FID" << std::setw(9)
            << "seconds" << "note\n";
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const RunProgress& p = states.progress(i);
    const RunState s = states.state(i);
    std::string note;
    if (s == RunState::Failed || (s == RunState::Pending && !p.last_error.empty())) note = p.last_error.substr(0, 100);
    if (s == RunState::Running) note = "on rank " + std::to_string(p.rank);
    if (s == RunState::Blocked) note = "a run it starts from failed";
    std::cout << std::left << std::setw(5) << i << std::setw(9) << run_state_name(s) << std::setw(9) << p.starts
              << std::setw(38) << plan.runs[i].name << std::setw(18) << plan.runs[i].run_id << std::setw(10)
              << cell(p.metrics_json, "fid", 2) << std::setw(9)
              << (p.done ? std::to_string(static_cast<int>(p.seconds)) : "") << note << "\n";
  }
  std::cout << "\n" << states.count(RunState::Done) << "/" << plan.runs.size() << " done, "
            << states.count(RunState::Running) << " running, " << states.count(RunState::Pending) << " pending, "
            << states.count(RunState::Failed) << " failed, " << states.count(RunState::Blocked) << " blocked"
            << "  (journal: " << journal << ")\n";
  return 0;
}

int sweep_run_command(int argc, char** argv) {
  po::options_description options("sweep run options");
  options.add_options()
      ("retry-failed", "give runs that failed max_attempts times a fresh set of attempts")
      ("simulate-runs", "workers answer each run at once with made-up metrics, writing no run folders: "
       "measures the coordinator alone (difffit bench sweep --simulate)")
      ("log-level", po::value<std::string>()->default_value("info"), "trace|debug|info|warn|error");
  SweepArgs args;
  if (!parse_sweep_args("sweep run",
                        "Runs (or resumes) a sweep: `mpirun -n N difffit sweep run FILE` uses rank 0 to coordinate "
                        "and N-1 workers; one process runs everything itself.\nExit: 0 all done, 5 some runs failed, "
                        "128+signal stopped (rerun to resume), 6 drained: a DRAIN file in the state folder lets the runs in "
                        "flight finish and starts no more (rerun to go on), 2 bad config, 3 data/IO.",
                        argc, argv, options, args)) {
    return 0;
  }
  MpiSession mpi(&argc, &argv);
  auto transport = make_mpi_transport();
  const int rank = transport->rank(), size = transport->size();
  refuse_slurm_singletons(size);
  const SweepConfig config = load_sweep(args.file, args.overrides);
  std::filesystem::create_directories(std::filesystem::path(config.state_dir()) / "logs");
  LoggingOptions logging;
  logging.rank = rank;
  logging.level = args.vm["log-level"].as<std::string>();
  logging.log_file = (std::filesystem::path(config.state_dir()) / "logs" / ("rank-" + std::to_string(rank) + ".log")).string();
  init_logging(logging);
  set_compute_threads(config.threads);
  install_stop_handlers();

  SweepJobOptions job;
  job.retry_failed = args.vm.count("retry-failed") > 0;
  job.simulate_runs = args.vm.count("simulate-runs") > 0;
  return run_sweep_job(config, *transport, job);
}

}  // namespace

int run_sweep_command(int argc, char** argv) {
  return run_subcommand("sweep",
                        "usage: difffit sweep run|plan|status SWEEP.yaml [--set k=v ...]\n"
                        "  run     run or resume the sweep (under mpirun/srun: rank 0 coordinates)\n"
                        "  plan    list the runs it expands to\n"
                        "  status  the state of every run\n",
                        argc, argv,
                        {{"run", sweep_run_command}, {"plan", sweep_plan_command}, {"status", sweep_status_command}});
}

}  // namespace difffit
