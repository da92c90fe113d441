// The difffit subcommands. Each parses its own options (argv[0] is the command name)
// and returns the process exit code.
#pragma once

namespace difffit {

int run_forward_command(int argc, char** argv);
int run_params_command(int argc, char** argv);
int run_merge_command(int argc, char** argv);
int run_demo_command(int argc, char** argv);
int run_prepare_command(int argc, char** argv);
int run_eval_command(int argc, char** argv);  // also `difffit fid`
int run_sample_command(int argc, char** argv);
int run_loss_command(int argc, char** argv);
int run_run_command(int argc, char** argv);
int run_sweep_command(int argc, char** argv);  // difffit sweep run|plan|status
int run_results_command(int argc, char** argv);  // difffit results table|plot|export|show
int run_bench_command(int argc, char** argv);
int run_bench_sample_command(int argc, char** argv);  // difffit bench sample
int run_bench_vae_command(int argc, char** argv);     // difffit bench vae
int run_bench_fid_command(int argc, char** argv);     // difffit bench fid
int run_bench_loader_command(int argc, char** argv);  // difffit bench loader
int run_bench_sweep_command(int argc, char** argv);   // difffit bench sweep
int run_vae_command(int argc, char** argv);           // difffit vae encode|decode|info

}  // namespace difffit
