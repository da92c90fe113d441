// difffit: git-style subcommands; errors become a clear message and an exit code
// (0 done, 2 bad usage/config, 3 bad data/IO or out of memory, 1 internal).
#include <c10/util/Exception.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <new>
#include <string>

#include "app/commands.h"
#include "common/platform.h"
#include "common/error.h"
#include "common/logging.h"

namespace {

struct Command {
  std::function<int(int, char**)> run;
  const char* summary;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"forward", {difffit::run_forward_command, "run the DiT on inputs from HDF5 (x, t, y) and write its output"}},
      {"params", {difffit::run_params_command, "count total and trainable parameters per fine-tuning method"}},
      {"merge", {difffit::run_merge_command, "fold a linear delta (DiffFit, LoRA, BitFit) into a plain DiT checkpoint"}},
      {"demo", {difffit::run_demo_command, "a short end-to-end demonstration of what works"}},
      {"prepare", {difffit::run_prepare_command, "prepare a dataset (or the mini benchmark) into HDF5 files"}},
      {"eval", {difffit::run_eval_command, "score samples: FID, sFID, KID, Inception Score, precision/recall"}},
      {"fid", {difffit::run_eval_command, "the same as eval"}},
      {"bench", {difffit::run_bench_command, "benchmarks that print JSON (train-step, sample, vae, fid, loader, sweep)"}},
      {"run", {difffit::run_run_command, "run one experiment (train, sample, record) from a YAML file"}},
      {"sweep", {difffit::run_sweep_command, "run, plan or inspect a sweep of experiments (MPI ranks or one process)"}},
      {"results", {difffit::run_results_command, "tables (Markdown/LaTeX/CSV), plots (SVG) and CSV export of a sweep's results"}},
      {"sample", {difffit::run_sample_command, "draw samples with DDPM or DDIM (optional CFG)"}},
      {"loss", {difffit::run_loss_command, "compute the hybrid diffusion loss terms on given inputs and noise"}},
      {"vae", {difffit::run_vae_command, "the SD autoencoder: encode a prepared dataset to latents, decode samples"}},
  };
  return table;
}

void print_usage() {
  std::cout << "usage: difffit <command> [options]   (difffit <command> --help for its options)\n\ncommands:\n";
  for (const auto& [name, command] : commands()) {
    std::cout << "  " << name << std::string(10 - std::min<size_t>(name.size(), 9), ' ') << command.summary << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  difffit::ensure_cpu_settings(argv);  // before any matrix product: may restart this program once
  difffit::keep_freed_memory();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  auto it = commands().find(argv[1]);
  if (it == commands().end()) {
    std::cerr << "difffit: unknown command '" << argv[1] << "'\n";
    print_usage();
    return 2;
  }
  try {
    return it->second.run(argc - 1, argv + 1);
  } catch (const difffit::Error& e) {
    difffit::log()->error("{}", e.what());
    return e.exit_code();
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    // LibTorch's CPU allocator reports running out of memory as an enforce failure.
    if (what.find("not enough memory") != std::string::npos || what.find("alloc_cpu") != std::string::npos) {
      difffit::log()->error("out of memory: {} (a size in the command line or config is too large for this machine)",
                            what);
      return 3;
    }
    difffit::log()->error("LibTorch: {}", what);
    return 1;
  } catch (const std::bad_alloc&) {
    difffit::log()->error("out of memory (a size in the command line or config is too large for this machine)");
    return 3;
  } catch (const std::filesystem::filesystem_error& e) {
    difffit::log()->error("{}", e.what());  // names the path(s) and why
    return 3;
  } catch (const std::exception& e) {
    difffit::log()->error("{}", e.what());
    return 1;
  }
}
