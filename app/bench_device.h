// What the `difffit bench` timings share: where they run (--device, --tf32), the
// --precision flag, percentile summaries, and the facts written beside each timing.
#pragma once

#include <c10/core/Device.h>

#include <chrono>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "common/platform.h"

namespace difffit {

using BenchClock = std::chrono::steady_clock;

struct Timing {
  double median_ms = 0, p10_ms = 0, p90_ms = 0, min_ms = 0;
};

// Median, 10th and 90th percentile and minimum of per-step milliseconds (not empty).
Timing summarize(std::vector<double> ms);

// Where a benchmark runs: --device cpu|cuda|cuda:K, and on CUDA --tf32 (TF32 tensor-core
// matrix products and convolutions for float32, as PyTorch's allow_tf32 flags).
struct BenchDevice {
  c10::Device device = c10::Device(c10::kCPU);
  bool tf32 = false;
  bool cuda() const { return device.is_cuda(); }
  // The work queued so far has finished (timings on CUDA need it).
  void synchronize() const;
};

void add_device_options(boost::program_options::options_description& options);
// Refuses (exit 2) a CUDA device this LibTorch or machine lacks, and --tf32 without CUDA;
// sets LibTorch's TF32 switches.
BenchDevice device_from(const boost::program_options::variables_map& vm);

// --precision of train-step and vae: fp32, or bf16 autocast (auto: what a run would pick).
Precision precision_from(const boost::program_options::variables_map& vm, const BenchDevice& device);

// Where it ran ("device", and on CUDA "tf32").
void add_device_json(nlohmann::ordered_json& out, const BenchDevice& device);
// On CUDA, "peak_gpu_allocated_bytes" since the last reset_gpu_peak().
void add_gpu_peak_json(nlohmann::ordered_json& out, const BenchDevice& device);
// The BLAS behind every matrix product, recorded with each timing.
nlohmann::ordered_json blas_json();

}  // namespace difffit
