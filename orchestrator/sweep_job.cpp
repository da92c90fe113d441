#include "orchestrator/sweep_job.h"

#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "common/communicator.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/nccl_communicator.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/run_groups.h"
#include "orchestrator/sweep_ledger.h"
#include "orchestrator/sweep_plan.h"
#include "orchestrator/worker_service.h"
#include "worker/run/experiment_config.h"

namespace difffit {
namespace {

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

}  // namespace

int run_sweep_job(const SweepConfig& config, MessageTransport& transport, const SweepJobOptions& options) {
  const int rank = transport.rank(), size = transport.size();
  const SweepPlan plan = plan_sweep(config);  // every rank plans: a bad file stops them all alike
  const RunExecutor execute = options.simulate_runs ? simulated_runs() : real_runs();
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
        serve_as_worker(config, transport, execute);
      } else {
        RunGroup run_group;
        run_group.comm = group.get();
        run_group.check = group_check.get();
        if (groups.is_leader(rank)) {
          run_group.members = groups.members_of(g);
          run_group.members.erase(run_group.members.begin());
          serve_as_worker(config, transport, execute, run_group);
        } else {
          serve_as_group_member(config, transport, execute, run_group);
        }
      }
      return 0;
    } catch (const Error& e) {  // the coordinator would wait for this rank forever: end the job
      log()->error("[sweep] worker rank {}: {}", rank, e.what());
      transport.abort_job(e.exit_code());
    } catch (const std::exception& e) {
      log()->error("[sweep] worker rank {}: internal error: {}", rank, e.what());
      transport.abort_job(1);
    }
  }
  try {
    inject_fault("coordinator");
    SweepLedger ledger(config, plan, size);
    if (options.retry_failed) {
      log()->info("[sweep] retrying {} failed run(s)", ledger.retry_failed());
    }
    log()->info("[sweep] {}: {} runs, {} done, {} failed; {} rank(s), {} thread(s) each", config.name,
                plan.runs.size(), ledger.states().count(RunState::Done), ledger.states().count(RunState::Failed),
                size, config.threads);
    return size == 1 ? run_sweep_in_process(config, ledger, execute)
                     : coordinate_sweep(config, ledger, transport, groups.leaders());
  } catch (const Error& e) {
    // Workers wait for orders that will not come: end the whole job.
    if (size > 1) {
      log()->error("[sweep] coordinator: {}", e.what());
      transport.abort_job(e.exit_code());
    }
    throw;
  } catch (const std::exception& e) {  // a library's exception (JSON, LibTorch, ...): the same, never a hang
    if (size > 1) {
      log()->error("[sweep] coordinator: internal error: {}", e.what());
      transport.abort_job(1);
    }
    throw;
  }
}

}  // namespace difffit
