#include "worker/run/execute_run.h"

#include <c10/util/Exception.h>

#include <chrono>
#include <filesystem>

#include "common/error.h"
#include "common/input_file.h"
#include "common/logging.h"
#include "common/run_folder.h"
#include "common/stop_signals.h"
#include "worker/run/run_experiment.h"

namespace difffit {
namespace {

}  // namespace

RunReport execute_run(const RunRequest& request, const std::function<void(int64_t)>& on_step, const DataParallel& dp) {
  RunReport report;
  report.index = request.index;
  report.attempt = request.attempt;
  const auto begin = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(); };
  try {
    ExperimentLoadOptions options;
    options.inherited = request.inherited;
    ExperimentConfig config = load_experiment(request.experiment, request.overrides, options);
    report.run_id = config.run_id();
    report.run_dir = config.run_dir();
    if (!request.expected_run_id.empty() && report.run_id != request.expected_run_id) {
      throw_config(request.experiment + ": resolves to run id " + report.run_id + ", but the sweep planned " +
                   request.expected_run_id + " (the file changed after the sweep started; restart the sweep)");
    }
    RunHooks hooks;
    hooks.on_step = [&](int64_t step) {
      if (on_step) on_step(step);
      if (request.time_limit_s <= 0) return;
      // A run group stops together: the limit counts when any of its ranks is over it.
      bool over = elapsed() > request.time_limit_s;
      if (dp.active()) over = sum_over_ranks({over ? 1.0 : 0.0}, dp)[0] > 0;
      if (over) {
        throw Error(ErrorKind::Internal, "run time limit of " + std::to_string(request.time_limit_s) +
                                             " s exceeded at step " + std::to_string(step));
      }
    };
    run_experiment(config, /*force=*/false, hooks, dp);
    if (dp.rank == 0) report.metrics_json = read_input_file(RunFolder{report.run_dir}.metrics(), "a metrics file",
                                                         kJsonFileLimit);
    report.status = RunStatus::Done;
  } catch (const StoppedBySignal& stopped) {
    report.status = RunStatus::Stopped;
    report.signal = stopped.signal;
  } catch (const Error& e) {
    report.error = e.what();
  } catch (const c10::Error& e) {
    report.error = std::string("LibTorch: ") + e.what_without_backtrace();
  } catch (const std::exception& e) {
    report.error = e.what();
  } catch (...) {
    report.error = "unknown exception";
  }
  report.seconds = elapsed();
  if (report.status == RunStatus::Failed) log()->error("[run] {} failed: {}", request.experiment, report.error);
  return report;
}

}  // namespace difffit
