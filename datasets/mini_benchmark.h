// The built-in mini benchmark: Fashion-MNIST (Debian's dataset-fashion-mnist) padded
// to 32x32x1, a pre-training source dataset, eight downstream datasets, each a
// documented, deterministic domain shift, and the source at twice the resolution for the
// resolution transfer (the paper's 256 -> 512 px). Train splits come from Fashion-MNIST's
// training set, held-out reference splits (for FID) from its test set.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/image_io.h"

namespace difffit {

// One dataset of the benchmark, as defined (no files yet).
struct MiniTaskSpec {
  std::string name;                 // folder name and table column
  std::string description;          // one line for benchmark.yaml and the README
  std::vector<int> classes;         // Fashion-MNIST labels kept, in task-label order
  int64_t train_per_class = 0;      // cap on training images per class (0 = all)
  // Applied to each padded 32x32 image; `key` is unique per (split, image) for noise.
  std::function<void(RawImage& image, uint64_t key)> shift;
  // After the shift the image is enlarged to scale x the resolution with Pillow's BICUBIC
  // filter (Image.resize, bit-exact): a pure change of resolution, same picture.
  int64_t scale = 1;
  bool transfer = false;  // listed under `transfer:` in benchmark.yaml, not among the downstream tasks
};

// "source" first, then the eight downstream tasks in table order, then the transfer task.
const std::vector<MiniTaskSpec>& mini_task_specs();

struct MiniTaskFiles {
  std::string name, description;
  int64_t num_classes = 0;
  int64_t resolution = 0;               // image side in pixels
  bool transfer = false;                // the resolution transfer's task (MiniTaskSpec::transfer)
  std::string train, ref;               // paths relative to the benchmark folder
  int64_t train_images = 0, ref_images = 0;
  std::string train_hash, ref_hash;     // content hashes
};

struct MiniBenchmarkOptions {
  std::string output_dir;                                            // gets benchmark.yaml and one folder per task
  std::string fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";  // IDX .gz files
  int64_t resolution = 32;                                           // 28x28 is padded (centered) to this
};

// Writes DIR/<task>/{train,ref}.h5 and DIR/benchmark.yaml (written last, atomically).
std::vector<MiniTaskFiles> build_mini_benchmark(const MiniBenchmarkOptions& options);

}  // namespace difffit
