// Loader throughput: images/s of ImageBatchLoader alone (no model), with and without
// the prefetch thread, on a prepared file. Prints one JSON object.
//   bench_loader [PATH.h5] [--batch-size B] [--batches K] [--seconds S]
//                [--resolution R --channels C --images N]   (synthetic data)
// Without PATH, a synthetic dataset (default 20000 x 32x32x1, like the mini benchmark;
// smooth gradients plus noise, so it compresses like real images) is written to /tmp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "common/error.h"
#include "datasets/image_loader.h"
#include "datasets/prepared_writer.h"

namespace {

std::string make_synthetic(int64_t n, int64_t resolution, int64_t channels) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("difffit-bench-loader-" + std::to_string(resolution) + "x" + std::to_string(channels) + ".h5"))
                               .string();
  difffit::PreparedMeta meta;
  meta.source = "synthetic";
  meta.split = "train";
  meta.resolution = resolution;
  meta.channels = channels;
  meta.class_names = {"a", "b", "c", "d", "e"};
  difffit::PreparedWriter writer(path, meta);
  difffit::RawImage image(resolution, resolution, channels);
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

Result measure(difffit::LoaderOptions options, double seconds, int64_t max_batches, double step_ms) {
  difffit::ImageBatchLoader loader(options);
  loader.next();  // warm-up: first batch, thread start
  int64_t images = 0, batches = 0;
  double waited = 0;
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    const auto t0 = std::chrono::steady_clock::now();
    difffit::ImageBatch batch = loader.next();
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

int main(int argc, char** argv) {
  std::string path;
  int64_t batch_size = 64, max_batches = 2000, resolution = 32, channels = 1, images = 20000;
  double seconds = 3.0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch-size") && i + 1 < argc) batch_size = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--batches") && i + 1 < argc) max_batches = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--resolution") && i + 1 < argc) resolution = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--channels") && i + 1 < argc) channels = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--images") && i + 1 < argc) images = std::atoll(argv[++i]);
    else path = argv[i];
  }
  try {
    at::set_num_threads(1);
    const bool synthetic = path.empty();
    if (synthetic) path = make_synthetic(images, resolution, channels);
    difffit::LoaderOptions options;
    options.path = path;
    options.batch_size = batch_size;
    options.seed = 1;
    options.prefetch_batches = 0;
    Result sync = measure(options, seconds, max_batches, 0);
    options.prefetch_batches = 2;
    Result prefetch = measure(options, seconds, max_batches, 0);
    // With a simulated 20 ms training step the consumer should hardly ever wait.
    Result overlapped = measure(options, seconds, max_batches, 20.0);
    options.max_memory_bytes = 0;  // the per-image HDF5 read path used for datasets too big for memory
    options.prefetch_batches = 0;
    Result from_disk = measure(options, seconds, max_batches, 0);
    difffit::ImageBatchLoader info(options);
    std::printf(
        "{\"path\": \"%s\", \"images\": %lld, \"resolution\": %lld, \"channels\": %lld, \"batch_size\": %lld, "
        "\"sync_images_per_s\": %.0f, \"prefetch_images_per_s\": %.0f, "
        "\"disk_sync_images_per_s\": %.0f, \"wait_ms_per_batch_with_20ms_step\": %.3f}\n",
        path.c_str(), static_cast<long long>(info.num_images()), static_cast<long long>(info.resolution()),
        static_cast<long long>(info.channels()), static_cast<long long>(batch_size), sync.images_per_s,
        prefetch.images_per_s, from_disk.images_per_s, overlapped.consumer_wait_ms);
    if (synthetic) {
      std::filesystem::remove(path);
      std::filesystem::remove(path + ".report.txt");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loader: %s\n", e.what());
    return 1;
  }
  return 0;
}
