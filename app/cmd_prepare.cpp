// difffit prepare: a dataset from its native layout, or the built-in mini benchmark,
// into prepared HDF5 files (see the README, "Datasets").
#include <iostream>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/platform.h"
#include "datasets/idx_reader.h"
#include "datasets/mini_benchmark.h"
#include "datasets/prepare.h"
#include "datasets/source_listing.h"

namespace difffit {

int run_prepare_command(int argc, char** argv) {
  std::string kinds;
  for (const auto& k : dataset_kinds()) kinds += (kinds.empty() ? "" : " | ") + k;
  po::options_description options("prepare options");
  options.add_options()
      ("benchmark", po::value<std::string>(), "build a whole benchmark instead: mini (writes DIR/benchmark.yaml)")
      ("source", po::value<std::string>(), ("dataset kind: " + kinds).c_str())
      ("input", po::value<std::string>()->default_value(""),
       "dataset root folder (fashion-mnist, --benchmark mini: the IDX folder, default /usr/share/datasets/fashion-mnist)")
      ("output", po::value<std::string>()->required(), "the .h5 file to write (--benchmark: a folder)")
      ("resolution", po::value<int64_t>()->default_value(256), "output side in pixels (--benchmark mini: 32)")
      ("split", po::value<std::string>()->default_value("train"), "split to prepare (kinds differ; see the README)")
      ("channels", po::value<int64_t>()->default_value(0), "1 (gray) or 3 (RGB); 0 = natural (fashion-mnist 1, else 3)")
      ("fit", po::value<std::string>()->default_value("adm-center"),
       "adm-center (DiT's center crop, Pillow BOX + BICUBIC) | pad-center (pad/crop, no resampling)")
      ("limit", po::value<int64_t>()->default_value(0), "keep only the first N listed images (0 = all)")
      ("threads", po::value<int>()->default_value(1), "decode/resize threads (output is identical for any count)");
  po::variables_map vm;
  if (!parse_command_line("prepare", "Prepares datasets into HDF5 files (uint8 images, labels, names, hashes).", argc,
                          argv, options, vm)) {
    return 0;
  }
  const std::string output = vm["output"].as<std::string>();
  if (vm.count("benchmark")) {
    if (vm["benchmark"].as<std::string>() != "mini") throw_usage("prepare: --benchmark must be 'mini'");
    if (vm.count("source")) throw_usage("prepare: give either --benchmark or --source");
    // The benchmark fixes its own splits, channels, fit and sizes: a flag it would not read is refused.
    for (const char* flag : {"split", "channels", "fit", "limit", "threads"})
      if (!vm[flag].defaulted()) throw_usage(std::string("prepare: --") + flag + " does not go with --benchmark mini");
    MiniBenchmarkOptions mini;
    mini.output_dir = output;
    if (!vm["input"].as<std::string>().empty()) mini.fashion_mnist_dir = vm["input"].as<std::string>();
    if (!vm["resolution"].defaulted()) mini.resolution = vm["resolution"].as<int64_t>();
    const auto tasks = build_mini_benchmark(mini);
    int64_t transfer = 0;
    for (const auto& task : tasks) transfer += task.transfer;
    const int64_t downstream = static_cast<int64_t>(tasks.size()) - 1 - transfer;
    std::cout << output << "/benchmark.yaml: source, " << downstream << " downstream datasets and " << transfer
              << " at twice the resolution (transfer)\n";
    return 0;
  }
  if (!vm.count("source")) throw_usage("prepare: --source KIND (or --benchmark mini) is required");
  PrepareOptions prepare;
  prepare.source = vm["source"].as<std::string>();
  bool known = false;
  for (const auto& k : dataset_kinds()) known = known || k == prepare.source;
  if (!known) throw_usage("prepare: unknown --source '" + prepare.source + "' (" + kinds + ")");
  prepare.input = vm["input"].as<std::string>();
  if (prepare.input.empty() && prepare.source != "fashion-mnist") throw_usage("prepare: --input is required");
  prepare.output = output;
  check_output_path(output, "--output", {prepare.input});
  prepare.split = vm["split"].as<std::string>();
  prepare.resolution = vm["resolution"].as<int64_t>();
  prepare.channels = vm["channels"].as<int64_t>();
  prepare.fit = parse_fit_mode(vm["fit"].as<std::string>());
  prepare.limit = vm["limit"].as<int64_t>();
  prepare.threads = vm["threads"].as<int>();
  if (prepare.limit < 0) throw_usage("prepare: --limit must be >= 0 (0 = all)");
  if (prepare.threads < 1 || prepare.threads > kMaxComputeThreads)
    throw_usage("prepare: --threads must be in 1.." + std::to_string(kMaxComputeThreads));
  PrepareSummary summary = prepare_dataset(prepare);
  std::cout << summary.path << ": " << summary.images << " images, " << summary.skipped << " skipped (" << summary.report_path
            << "), content_hash " << summary.content_hash << "\n";
  return 0;
}

}  // namespace difffit
