// difffit run: one experiment from a YAML file, end to end; under mpirun/srun the ranks
// train it together (data parallel: train.batch_size is the global batch).
#include <iostream>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/platform.h"
#include "common/stop_signals.h"
#include "worker/run/run_experiment.h"

namespace difffit {

int run_run_command(int argc, char** argv) {
  po::options_description options("run options");
  options.add_options()
      ("experiment", po::value<std::string>()->required(), "experiment YAML file")
      ("set", po::value<std::vector<std::string>>()->composing(), "override a field: --set train.steps=100 (repeatable)")
      ("force", "train again from step 0, even if the run is marked DONE (its checkpoint is discarded)")
      ("dump-config", "print the resolved config and run id, and exit")
      ("print-run-dir", "print the run folder, and exit");
  po::positional_options_description positional;
  positional.add("experiment", 1);
  po::variables_map vm;
  if (!parse_command_line("run", "Trains, samples and records one experiment (resumes an interrupted run).", argc,
                          argv, options, vm, &positional)) {
    return 0;
  }
  std::vector<std::string> overrides;
  if (vm.count("set")) overrides = vm["set"].as<std::vector<std::string>>();
  ExperimentConfig config = load_experiment(vm["experiment"].as<std::string>(), overrides);
  if (vm.count("print-run-dir")) {
    std::cout << config.run_dir() << std::endl;
    return 0;
  }
  if (vm.count("dump-config")) {
    std::cout << config.resolved_yaml();
    return 0;
  }
  set_compute_threads(config.threads);
  // Under mpirun/srun the ranks train the one run together (data parallel; NCCL on CUDA).
  LaunchRanks ranks = join_launch_ranks(&argc, &argv, config.train.device == DeviceKind::Cuda);
  install_stop_handlers();
  try {
    run_experiment(config, vm.count("force") > 0, {}, data_parallel_over(ranks.comm.get()));
  } catch (const StoppedBySignal& stopped) {
    return 128 + stopped.signal;
  }
  return 0;
}

}  // namespace difffit
