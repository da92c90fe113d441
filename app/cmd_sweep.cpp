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
#include "common/nccl_communicator.h"
#include "common/platform.h"
#include "common/stop_signals.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/message_transport.h"
#include "orchestrator/run_groups.h"
#include "orchestrator/sweep_plan.h"
#include "orchestrator/worker_service.h"
#include "worker/run/experiment_config.h"

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
  const std::string journal = (std::filesystem::path(config.state_dir()) / "journal.jsonl").string();
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

// Open MPI 5 under srun without PMIx can start N singletons: each would think it is
// alone and run the whole sweep. Refuse that.
void check_world_size(int size) {
  const char* tasks = std::getenv("SLURM_NTASKS");
  if (!tasks || size != 1) return;
  if (std::atoi(tasks) > 1) {
    throw_usage("MPI sees 1 rank but SLURM_NTASKS=" + std::string(tasks) +
                ": launch with `srun --mpi=pmix` (or mpirun) so the ranks form one job");
  }
}

// DIFFFIT_INJECT_FAULT=coordinator|worker throws a library-style exception (not a difffit
// error) there: how the tests check that any exception ends the whole job, never a hang.
void inject_fault(const std::string& where) {
  const char* fault = std::getenv("DIFFFIT_INJECT_FAULT");
  if (fault && where == fault) throw std::logic_error("injected fault in the " + where + " (DIFFFIT_INJECT_FAULT)");
}

// Whether the sweep's runs train on CUDA (its first run says; a sweep does not mix devices).
bool runs_on_cuda(const SweepPlan& plan) {
  if (plan.runs.empty()) return false;
  const RunRequest& first = plan.runs.front().request;
  ExperimentLoadOptions options;
  options.inherited = first.inherited;
  options.require_base_done = false;
  return load_experiment(first.experiment, first.overrides, options).train.device == DeviceKind::Cuda;
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
                        "128+signal stopped (rerun to resume), 2 bad config, 3 data/IO.",
                        argc, argv, options, args)) {
    return 0;
  }
  MpiSession mpi(&argc, &argv);
  auto transport = make_mpi_transport();
  const int rank = transport->rank(), size = transport->size();
  check_world_size(size);
  const SweepConfig config = load_sweep(args.file, args.overrides);
  std::filesystem::create_directories(std::filesystem::path(config.state_dir()) / "logs");
  LoggingOptions logging;
  logging.rank = rank;
  logging.level = args.vm["log-level"].as<std::string>();
  logging.log_file = (std::filesystem::path(config.state_dir()) / "logs" / ("rank-" + std::to_string(rank) + ".log")).string();
  init_logging(logging);
  set_compute_threads(config.threads);
  install_stop_handlers();

  const SweepPlan plan = plan_sweep(config);  // every rank plans: a bad file stops them all alike
  const RunExecutor execute = args.vm.count("simulate-runs") ? simulated_runs() : real_runs();
  // Run groups (ranks_per_run > 1): every rank works out the same layout and joins the
  // split, which is collective; the groups' collectives run beside the heartbeat thread.
  const RunGroups groups = plan_run_groups(size, config.ranks_per_run, config.source);
  std::unique_ptr<Communicator> group, group_check;
  if (config.ranks_per_run > 1 && size > 1) {
    if (!mpi_threads_concurrent())
      throw_usage("ranks_per_run " + std::to_string(config.ranks_per_run) +
                  " needs an MPI library with MPI_THREAD_MULTIPLE (a group trains while its leader's heartbeat "
                  "thread talks to the coordinator)");
    group = split_mpi_communicator(groups.group_of(rank), rank);
    group_check = split_mpi_communicator(groups.group_of(rank), rank);
    // As `mpirun difffit run` does: NCCL over the group when its runs are on CUDA.
    if (group && runs_on_cuda(plan)) group = make_data_parallel_communicator(true, std::move(group));
  } else if (config.ranks_per_run > 1 && rank == 0) {
    log()->warn("[sweep] ranks_per_run {}: one process runs each run alone (launch under mpirun/srun for run groups)",
                config.ranks_per_run);
  }
  if (rank > 0) {
    try {
      inject_fault("worker");
      const int g = groups.group_of(rank);
      if (g < 0) {
        log()->warn("[sweep] rank {} is not in a run group ({} worker ranks, {} per run): it stays idle", rank,
                    size - 1, config.ranks_per_run);
      } else if (!group) {
        serve_as_worker(config, *transport, execute);
      } else {
        RunGroup run_group;
        run_group.comm = group.get();
        run_group.check = group_check.get();
        if (groups.is_leader(rank)) {
          run_group.members = groups.members_of(g);
          run_group.members.erase(run_group.members.begin());
          serve_as_worker(config, *transport, execute, run_group);
        } else {
          serve_as_group_member(config, *transport, execute, run_group);
        }
      }
      return 0;
    } catch (const Error& e) {  // the coordinator would wait for this rank forever: end the job
      log()->error("[sweep] worker rank {}: {}", rank, e.what());
      transport->abort_job(e.exit_code());
    } catch (const std::exception& e) {
      log()->error("[sweep] worker rank {}: internal error: {}", rank, e.what());
      transport->abort_job(1);
    }
  }
  try {
    inject_fault("coordinator");
    SweepLedger ledger(config, plan, size);
    if (args.vm.count("retry-failed")) {
      log()->info("[sweep] retrying {} failed run(s)", ledger.retry_failed());
    }
    log()->info("[sweep] {}: {} runs, {} done, {} failed; {} rank(s), {} thread(s) each", config.name,
                plan.runs.size(), ledger.states().count(RunState::Done), ledger.states().count(RunState::Failed),
                size, config.threads);
    return size == 1 ? run_sweep_in_process(config, ledger, execute)
                     : coordinate_sweep(config, ledger, *transport, groups.leaders());
  } catch (const Error& e) {
    // Workers wait for orders that will not come: end the whole job.
    if (size > 1) {
      log()->error("[sweep] coordinator: {}", e.what());
      transport->abort_job(e.exit_code());
    }
    throw;
  } catch (const std::exception& e) {  // a library's exception (JSON, LibTorch, ...): the same, never a hang
    if (size > 1) {
      log()->error("[sweep] coordinator: internal error: {}", e.what());
      transport->abort_job(1);
    }
    throw;
  }
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
