// difffit bench loader: images/s of the training loader alone (no model), with and
// without the prefetch thread, in memory and read per image from disk. Prints JSON.
// Without --data, a synthetic dataset (default 20000 x 32x32x1, like the mini benchmark;
// smooth gradients plus noise, so it compresses like real images) is written to /tmp.
#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/error.h"
#include "common/json_text.h"
#include "datasets/image_loader.h"
#include "datasets/prepared_writer.h"

namespace difffit {
namespace {

std::string make_synthetic(int64_t n, int64_t resolution, int64_t channels) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("difffit-bench-loader-" + std::to_string(resolution) + "x" + std::to_string(channels) + ".h5"))
                               .string();
  PreparedMeta meta;
  meta.source = "synthetic";
  meta.split = "train";
  meta.resolution = resolution;
  meta.channels = channels;
  meta.class_names = {"a", "b", "c", "d", "e"};
  PreparedWriter writer(path, meta);
  RawImage image(resolution, resolution, channels);
  uint64_t state = 1;
  for (int64_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < image.pixels.size(); ++k) {
      const uint64_t noise = (state = state * 6364136223846793005ull + 1) >> 60;
      image.pixels[k] = static_cast<uint8_t>((k / channels) % resolution + (k / channels) / resolution + i + noise);
    }
    writer.add(image, i % 5, "synthetic[" + std::to_string(i) + "]");
  }
  writer.finish();
  return path;
}

struct Result {
  double images_per_s = 0;
  double consumer_wait_ms = 0;  // mean time next() blocked per batch
};

Result measure(LoaderOptions options, double seconds, int64_t max_batches, double step_ms) {
  ImageBatchLoader loader(options);
  loader.next();  // warm-up: first batch, thread start
  int64_t images = 0, batches = 0;
  double waited = 0;
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    const auto t0 = std::chrono::steady_clock::now();
    ImageBatch batch = loader.next();
    waited += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    images += batch.images.size(0);
    ++batches;
    if (step_ms > 0) {  // stands in for a training step, to show the prefetch overlap
      const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(step_ms);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed >= seconds || batches >= max_batches) {
      Result r;
      r.images_per_s = images / elapsed;
      r.consumer_wait_ms = 1000.0 * waited / batches;
      return r;
    }
  }
}

}  // namespace

int run_bench_loader_command(int argc, char** argv) {
  po::options_description options("bench loader options");
  options.add_options()
      ("data", po::value<std::string>()->default_value(""), "prepared HDF5 file (default: synthetic data)")
      ("batch-size", po::value<int64_t>()->default_value(64), "images per batch")
      ("batches", po::value<int64_t>()->default_value(2000), "at most this many batches per measurement")
      ("seconds", po::value<double>()->default_value(3.0), "at most this long per measurement")
      ("resolution", po::value<int64_t>()->default_value(32), "synthetic data: image side")
      ("channels", po::value<int64_t>()->default_value(1), "synthetic data: channels")
      ("images", po::value<int64_t>()->default_value(20000), "synthetic data: image count");
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("bench loader", "Times the training data loader alone (images/s, JSON).", argc, argv,
                          options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  const int64_t batch_size = int_flag_in(vm, "batch-size", 1, 1 << 20), max_batches = int_flag_in(vm, "batches", 1, INT64_MAX);
  const double seconds = vm["seconds"].as<double>();
  if (!(std::isfinite(seconds) && seconds > 0)) throw_usage("--seconds must be a positive number");
  std::string path = vm["data"].as<std::string>();
  const bool synthetic = path.empty();
  if (synthetic) {
    path = make_synthetic(vm["images"].as<int64_t>(), vm["resolution"].as<int64_t>(), vm["channels"].as<int64_t>());
  }
  // The synthetic file goes when the command ends, however it ends.
  struct RemoveSynthetic {
    std::string path;
    ~RemoveSynthetic() {
      if (path.empty()) return;
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
      std::filesystem::remove(path + ".report.txt", ignored);
    }
  } remove_synthetic{synthetic ? path : ""};
  LoaderOptions loader;
  loader.path = path;
  loader.batch_size = batch_size;
  loader.seed = 1;
  loader.prefetch_batches = 0;
  Result sync = measure(loader, seconds, max_batches, 0);
  loader.prefetch_batches = 2;
  Result prefetch = measure(loader, seconds, max_batches, 0);
  // With a simulated 20 ms training step the consumer should hardly ever wait.
  Result overlapped = measure(loader, seconds, max_batches, 20.0);
  loader.max_memory_bytes = 0;  // the per-image HDF5 read path used for datasets too big for memory
  loader.prefetch_batches = 0;
  Result from_disk = measure(loader, seconds, max_batches, 0);
  ImageBatchLoader info(loader);
  const nlohmann::ordered_json out = {{"benchmark", "loader"},
                                      {"path", path},
                                      {"images", info.num_images()},
                                      {"resolution", info.resolution()},
                                      {"channels", info.channels()},
                                      {"batch_size", batch_size},
                                      {"sync_images_per_s", sync.images_per_s},
                                      {"prefetch_images_per_s", prefetch.images_per_s},
                                      {"disk_sync_images_per_s", from_disk.images_per_s},
                                      {"wait_ms_per_batch_with_20ms_step", overlapped.consumer_wait_ms}};
  std::cout << json_text(out, 2) << std::endl;
  return 0;
}

}  // namespace difffit
