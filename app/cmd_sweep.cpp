// difffit sweep run|plan|status: a whole study from one sweep file, over MPI ranks
// (rank 0 coordinates, the others train) or in one process; resumable at any point.
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/communicator.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/platform.h"
#include "common/run_folder.h"
#include "common/stop_signals.h"
#include "orchestrator/sweep_job.h"
#include "orchestrator/sweep_listing.h"
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

int sweep_plan_command(int argc, char** argv) {
  po::options_description options("sweep plan options");
  SweepArgs args;
  if (!parse_sweep_args("sweep plan", "Lists the runs a sweep file expands to (ids, dependencies, grids).", argc,
                        argv, options, args)) {
    return 0;
  }
  const SweepConfig config = load_sweep(args.file, args.overrides);
  std::cout << sweep_plan_listing(config, plan_sweep(config));
  return 0;
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
  const std::vector<JournalEvent> events = Journal::read(journal);
  states.apply_all(events);
  std::cout << sweep_status_listing(config, plan, states, journal, sweep_history(events));
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
