// .npz files in the layout of the ADM evaluator (openai/guided-diffusion
// evaluations/evaluator.py), so users can score samples with the standard tool:
// sample batches hold `arr_0` uint8 (N, H, W, 3); reference batches `mu`, `sigma`.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace difffit {

class FeatureStats;

// A zip of stored .npy (format 1.0) entries named `<name>.npy`, as numpy.savez
// writes; numpy.load reads it back. Supported dtypes: uint8, int64, float32,
// float64. Atomic (PATH.tmp, then rename).
void write_npz(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& arrays);

// An image set's first `max_images` images (0 = all) as `arr_0` uint8 (N, H, W, 3);
// grey images are repeated to 3 channels. The whole array is held in memory.
void export_samples_npz(const std::string& image_set, const std::string& npz_path, int64_t max_images = 0);
// `mu` (D) and `sigma` (D, D) float64.
void export_stats_npz(const FeatureStats& stats, const std::string& npz_path);

}  // namespace difffit
