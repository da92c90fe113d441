#include "app/bench_device.h"

#include <ATen/Context.h>
#include <torch/cuda.h>

#include <algorithm>
#include <string>

#include "common/error.h"
#include "common/gpu_memory.h"
#include "common/torch_device.h"

namespace difffit {

Timing summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * (ms.size() - 1) + 0.5))]; };
  return {at(0.5), at(0.1), at(0.9), ms.front()};
}

void BenchDevice::synchronize() const {
  if (cuda()) torch::cuda::synchronize(device.index());  // -1: the current device
}

void add_device_options(boost::program_options::options_description& options) {
  options.add_options()
      ("device", boost::program_options::value<std::string>()->default_value("cpu"), "cpu | cuda | cuda:K")
      ("tf32", "CUDA: TF32 tensor cores for float32 matrix products and convolutions");
}

BenchDevice device_from(const boost::program_options::variables_map& vm) {
  BenchDevice bench{parse_torch_device(vm["device"].as<std::string>(), "--device"), vm.count("tf32") > 0};
  if (bench.cuda() && !torch::cuda::is_available()) {
    throw_usage("--device " + bench.device.str() + ": this LibTorch has no CUDA, or no CUDA device is visible");
  }
  if (bench.cuda() && bench.device.index() >= static_cast<int>(torch::cuda::device_count())) {
    throw_usage("--device " + bench.device.str() + ": only " + std::to_string(torch::cuda::device_count()) +
                " CUDA device(s) visible");
  }
  if (bench.tf32 && !bench.cuda()) throw_usage("--tf32 needs --device cuda");
  at::globalContext().setAllowTF32CuBLAS(bench.tf32);
  at::globalContext().setAllowTF32CuDNN(bench.tf32);
  return bench;
}

Precision precision_from(const boost::program_options::variables_map& vm, const BenchDevice& device) {
  return parse_precision(vm["precision"].as<std::string>(), "--precision",
                         device.cuda() ? DeviceKind::Cuda : DeviceKind::Cpu);
}

void add_device_json(nlohmann::ordered_json& out, const BenchDevice& device) {
  out["device"] = device.device.str();
  if (device.cuda()) out["tf32"] = device.tf32;
}

void add_gpu_peak_json(nlohmann::ordered_json& out, const BenchDevice& device) {
  if (device.cuda()) out["peak_gpu_allocated_bytes"] = gpu_peak_allocated_bytes();
}

nlohmann::ordered_json blas_json() {
  const BlasInfo blas = blas_info();
  return {{"library", blas.library}, {"core", blas.core}, {"threads", blas.threads}};
}

}  // namespace difffit
