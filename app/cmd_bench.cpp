// difffit bench: timings that print JSON. `train-step` times a full training step
// (forward, hybrid loss, backward, AdamW, EMA) per method, side by side in one
// process; `sample` times the sampler and `vae` the VAE decoder (these three on the CPU or CUDA).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/error.h"
#include "common/gpu_memory.h"
#include "common/json_text.h"
#include "common/logging.h"
#include "common/platform.h"
#include "common/torch_device.h"
#include "eval/feature_stats.h"
#include "eval/frechet_distance.h"
#include "eval/mini_cnn.h"
#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/model/autoencoder_kl.h"
#include "worker/model/build_model.h"
#include "worker/model/delta.h"
#include "worker/model/peft_method.h"
#include "worker/sample/sample_generator.h"
#include "worker/train/adamw.h"
#include "worker/train/ema.h"
#include "worker/train/training_step.h"

namespace difffit {
namespace {

using Clock = std::chrono::steady_clock;

struct Timing {
  double median_ms = 0, p10_ms = 0, p90_ms = 0, min_ms = 0;
};

Timing summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * (ms.size() - 1) + 0.5))]; };
  return {at(0.5), at(0.1), at(0.9), ms.front()};
}

// Where a benchmark runs: --device cpu|cuda|cuda:K, and on CUDA --tf32 (TF32 tensor-core
// matrix products and convolutions for float32, as PyTorch's allow_tf32 flags).
struct BenchDevice {
  c10::Device device = c10::Device(c10::kCPU);
  bool tf32 = false;
  bool cuda() const { return device.is_cuda(); }
  // The work queued so far has finished (timings on CUDA need it).
  void synchronize() const {
    if (cuda()) torch::cuda::synchronize(device.index());  // -1: the current device
  }
};

void add_device_options(po::options_description& options) {
  options.add_options()
      ("device", po::value<std::string>()->default_value("cpu"), "cpu | cuda | cuda:K")
      ("tf32", "CUDA: TF32 tensor cores for float32 matrix products and convolutions");
}

BenchDevice device_from(const po::variables_map& vm) {
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

// --precision of train-step and vae: fp32, or bf16 autocast (auto: what a run would pick).
Precision precision_from(const po::variables_map& vm, const BenchDevice& device) {
  return parse_precision(vm["precision"].as<std::string>(), "--precision",
                         device.cuda() ? DeviceKind::Cuda : DeviceKind::Cpu);
}

// Device facts recorded with each timing: where it ran and, on CUDA, the peak memory.
void add_device_json(nlohmann::ordered_json& out, const BenchDevice& device) {
  out["device"] = device.device.str();
  if (device.cuda()) {
    out["tf32"] = device.tf32;
    out["peak_gpu_allocated_bytes"] = gpu_peak_allocated_bytes();
  }
}

// The BLAS behind every matrix product, recorded with each timing.
nlohmann::ordered_json blas_json() {
  const BlasInfo blas = blas_info();
  return {{"library", blas.library}, {"core", blas.core}, {"threads", blas.threads}};
}

struct StepReport {
  std::string method, options;
  Timing timing;
  int64_t peak_bytes = 0, peak_gpu_bytes = -1, trainable = 0, total = 0, optimizer_bytes = 0, delta_bytes = 0;
};

struct StepBenchOptions {
  int64_t batch = 32, steps = 10, warmup = 2;
  bool bf16 = false, checkpoint_blocks = false;
  std::string profile_prefix;  // non-empty: a LibTorch profiler trace of the timed steps per method
};

StepReport bench_train_step(const DiTConfig& config, const MethodConfig& method, const StepBenchOptions& o,
                            const BenchDevice& device) {
  reset_peak_memory();
  torch::manual_seed(0);
  DiT model(config);
  model->run_options().checkpoint_blocks = o.checkpoint_blocks;
  perturb_trainable_weights(*model, 0.02);  // a "pre-trained" start
  MethodSetup setup = apply_method(*model, method);
  model->to(device.device);
  device.synchronize();
  reset_gpu_peak();
  AdamW optimizer(method_adamw_groups(setup, 1e-4), AdamWOptions{});
  Ema ema(setup.trainable_names(), setup.trainable_tensors(), 0.9999);
  GaussianDiffusion diffusion({1000, "", config.learn_sigma});
  at::Tensor x =
      (at::rand({o.batch, config.in_channels, config.input_size, config.input_size}) * 2 - 1).to(device.device);
  at::Tensor y = at::randint(0, config.num_classes, {o.batch}, at::kLong).to(device.device);
  model->train();
  std::vector<double> times;
  std::ofstream trace;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  if (!o.profile_prefix.empty()) {
    const std::string path = o.profile_prefix + "-" + method.name() + ".trace.json";
    trace.open(path);
    if (!trace) throw_io("--profile: cannot write " + path);
  }
  StepSettings settings;
  settings.bf16 = o.bf16;
  TrainingStep step(*model, diffusion, setup.trainable_tensors(), optimizer, ema, settings);  // the trainer's step
  for (int64_t i = 0; i < o.warmup + o.steps; ++i) {
    if (i == o.warmup && trace.is_open()) profile = std::make_unique<torch::autograd::profiler::RecordProfile>(trace);
    auto begin = Clock::now();
    step.run([&] { return std::make_pair(x, y); }, i);
    device.synchronize();
    if (i >= o.warmup) times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - begin).count());
  }
  profile.reset();  // writes the trace
  StepReport report;
  report.method = method.name();
  report.options = method.to_options_string();
  report.timing = summarize(times);
  report.peak_bytes = peak_memory_bytes();
  if (device.cuda()) report.peak_gpu_bytes = gpu_peak_allocated_bytes();
  report.trainable = setup.trainable_params;
  report.total = setup.total_params;
  report.optimizer_bytes = optimizer.state_bytes();
  const std::string delta = (std::filesystem::temp_directory_path() /
                             ("difffit-bench-delta-" + std::to_string(::getpid()) + ".safetensors"))
                                .string();
  save_delta(delta, *model, method);
  report.delta_bytes = static_cast<int64_t>(std::filesystem::file_size(delta));
  std::filesystem::remove(delta);
  return report;
}

int bench_train_step_command(int argc, char** argv) {
  po::options_description options("bench train-step options");
  options.add_options()
      ("batch", po::value<int64_t>()->default_value(32), "images per step")
      ("steps", po::value<int64_t>()->default_value(10), "timed steps")
      ("warmup", po::value<int64_t>()->default_value(2), "untimed steps first")
      ("precision", po::value<std::string>()->default_value("fp32"), "fp32 | bf16 (autocast) | auto")
      ("checkpoint-blocks", "activation checkpointing per block (train.checkpoint_blocks)")
      ("profile", po::value<std::string>(), "PREFIX: write each method's timed steps as a LibTorch profiler trace, "
                                            "PREFIX-<method>.trace.json (chrome://tracing, Perfetto)")
      ("json", "print JSON only");
  add_device_options(options);
  add_model_options(options);
  add_method_options(options, "all");
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("bench train-step",
                          "Times training steps per method (\"all\", or a list such as full,bitfit: side by side, ratios vs full).",
                          argc, argv, options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  const BenchDevice device = device_from(vm);
  DiTConfig config = model_config_from(vm);
  const Precision precision = precision_from(vm, device);
  std::vector<MethodConfig> methods;
  const std::string method = vm["method"].as<std::string>();
  if (method == "all") {
    for (const auto& name : method_names()) methods.push_back(make_method_config(name));
  } else if (method.find(',') != std::string::npos) {
    std::stringstream names(method);
    for (std::string name; std::getline(names, name, ',');) methods.push_back(make_method_config(name));
  } else {
    methods.push_back(method_config_from(vm));
  }
  StepBenchOptions step_options;
  step_options.batch = vm["batch"].as<int64_t>();
  step_options.steps = vm["steps"].as<int64_t>();
  step_options.warmup = vm["warmup"].as<int64_t>();
  step_options.bf16 = precision == Precision::Bf16;
  step_options.checkpoint_blocks = vm.count("checkpoint-blocks") > 0;
  if (vm.count("profile")) step_options.profile_prefix = vm["profile"].as<std::string>();
  std::vector<StepReport> reports;
  for (const auto& m : methods) {
    reports.push_back(bench_train_step(config, m, step_options, device));
    if (!vm.count("json")) {
      std::fprintf(stderr, "%-12s %9.1f ms/step (p10 %.1f, p90 %.1f)  peak %.1f MiB  trainable %lld\n",
                   reports.back().method.c_str(), reports.back().timing.median_ms, reports.back().timing.p10_ms,
                   reports.back().timing.p90_ms, reports.back().peak_bytes / 1048576.0,
                   static_cast<long long>(reports.back().trainable));
    }
  }
  double full_ms = 0;
  int64_t full_peak = 0;
  for (const auto& r : reports) {
    if (r.method == "full") {
      full_ms = r.timing.median_ms;
      full_peak = r.peak_bytes;
    }
  }
  nlohmann::ordered_json out = {{"benchmark", "train-step"},
                                {"model", config.to_key_values()},
                                {"batch", vm["batch"].as<int64_t>()},
                                {"steps", vm["steps"].as<int64_t>()},
                                {"threads", vm["threads"].as<int>()},
                                {"precision", precision_name(precision)},
                                {"checkpoint_blocks", vm.count("checkpoint-blocks") > 0},
                                {"methods", nlohmann::ordered_json::array()}};
  for (const auto& r : reports) {
    nlohmann::ordered_json m = {{"method", r.method},
                                {"options", r.options},
                                {"median_ms", r.timing.median_ms},
                                {"p10_ms", r.timing.p10_ms},
                                {"p90_ms", r.timing.p90_ms},
                                {"min_ms", r.timing.min_ms},
                                {"peak_rss_bytes", r.peak_bytes},
                                {"peak_gpu_allocated_bytes", r.peak_gpu_bytes},
                                {"trainable_params", r.trainable},
                                {"total_params", r.total},
                                {"optimizer_state_bytes", r.optimizer_bytes},
                                {"delta_bytes", r.delta_bytes}};
    if (full_ms > 0) {
      m["speedup_vs_full"] = full_ms / r.timing.median_ms;
      m["peak_rss_vs_full"] = static_cast<double>(r.peak_bytes) / full_peak;
    }
    out["methods"].push_back(std::move(m));
  }
  out["device"] = device.device.str();
  if (device.cuda()) out["tf32"] = device.tf32;
  out["blas"] = blas_json();
  std::cout << json_text(out, 2) << std::endl;
  return 0;
}

// Under mpirun/srun the ranks share the samples out (as `difffit sample` and a run do):
// the JSON (rank 0's) has the whole set's images/s, each rank's busy seconds (its own
// block) and the gather's seconds, so the scaling with ranks and the idle share show.
int bench_sample_command(int argc, char** argv) {
  po::options_description options("bench sample options");
  options.add_options()
      ("num", po::value<int64_t>()->default_value(0), "samples over all ranks (0 = one batch per rank)");
  SampleConfig defaults;  // a run's sampler (DDIM-25)
  defaults.batch_size = 64;
  add_sample_options(options, defaults);
  options.add_options()("json", "print JSON only");
  add_device_options(options);
  add_model_options(options);
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("bench sample", "Times sampling (images/s), shared over the ranks under mpirun.", argc,
                          argv, options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  const BenchDevice device = device_from(vm);
  LaunchRanks ranks = join_launch_ranks(&argc, &argv, device.cuda());
  const int world = ranks.comm ? ranks.comm->size() : 1;
  DiTConfig config = model_config_from(vm);
  torch::manual_seed(0);
  DiT model(config);
  SampleRequest request;
  request.sample = sample_config_from(vm, vm["num"].as<int64_t>());
  if (request.sample.batch_size < 1) throw_usage("--batch-size must be at least 1");
  if (request.sample.num <= 0) request.sample.num = request.sample.batch_size * world;
  request.device = device.device;
  reset_peak_memory();
  reset_gpu_peak();
  if (ranks.comm) ranks.comm->barrier();
  auto begin = Clock::now();
  double busy = 0.0;  // this rank's own block, up to its last step
  generate_samples_across_ranks(*model, request, ranks.comm.get(), [&](int64_t done, int64_t total) {
    if (done == total) busy = std::chrono::duration<double>(Clock::now() - begin).count();
  });
  device.synchronize();
  const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  at::Tensor mine = at::tensor({busy, static_cast<double>(peak_memory_bytes())}, at::kDouble);
  std::vector<at::Tensor> every = ranks.comm ? ranks.comm->allgather(mine) : std::vector<at::Tensor>{mine};
  if (ranks.comm && ranks.comm->rank() != 0) return 0;
  std::vector<double> busy_seconds;
  double max_busy = 0.0, peak_rss = 0.0;
  for (const at::Tensor& rank : every) {
    busy_seconds.push_back(rank[0].item<double>());
    max_busy = std::max(max_busy, busy_seconds.back());
    peak_rss = std::max(peak_rss, rank[1].item<double>());
  }
  double mean_busy = 0.0;
  for (double b : busy_seconds) mean_busy += b / busy_seconds.size();
  nlohmann::ordered_json out = {{"benchmark", "sample"},
                                {"model", config.to_key_values()},
                                {"sampler", sampler_name(request.sample.sampler)},
                                {"steps", request.sample.steps},
                                {"cfg_scale", request.sample.cfg_scale},
                                {"num", request.sample.num},
                                {"batch_size", request.sample.batch_size},
                                {"call_size", request.sample.call_size},
                                {"ranks", world},
                                {"seconds", seconds},
                                {"images_per_second", request.sample.num / seconds},
                                {"images_per_second_per_rank", request.sample.num / seconds / world},
                                {"rank_busy_seconds", busy_seconds},
                                {"busy_share", mean_busy / seconds},  // 1 = no rank waited
                                {"gather_seconds", seconds - max_busy},
                                {"peak_rss_bytes", static_cast<int64_t>(peak_rss)},
                                {"threads", vm["threads"].as<int>()},
                                {"blas", blas_json()}};
  add_device_json(out, device);
  std::cout << json_text(out, 2) << std::endl;
  return 0;
}

// The SD AutoencoderKL's decoder at its default architecture (LibTorch's initial weights:
// the speed does not depend on them), on random latents.
int bench_vae_command(int argc, char** argv) {
  po::options_description options("bench vae options");
  options.add_options()
      ("num", po::value<int64_t>()->default_value(16), "images decoded (timed)")
      ("resolution", po::value<int64_t>()->default_value(256), "image side in pixels (latents are 1/8 of it)")
      ("batch-size", po::value<int64_t>()->default_value(8), "images per decoder pass")
      ("precision", po::value<std::string>()->default_value("fp32"), "fp32 | bf16 (autocast) | auto")
      ("json", "print JSON only");
  add_device_options(options);
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("bench vae", "Times the VAE decoder (images/s).", argc, argv, options, vm)) return 0;
  apply_thread_option(vm);
  const BenchDevice device = device_from(vm);
  const Precision precision = precision_from(vm, device);
  const int64_t num = vm["num"].as<int64_t>(), side = vm["resolution"].as<int64_t>();
  if (num < 1 || side < 8 || side % 8 != 0) throw_usage("--num must be >= 1 and --resolution a multiple of 8");
  torch::manual_seed(0);
  AutoencoderKL vae(VaeConfig{});
  vae->to(device.device);
  vae->run_options().batch_size = vm["batch-size"].as<int64_t>();
  vae->run_options().bf16 = precision == Precision::Bf16;
  const at::Tensor latents = at::randn({num, vae->config().latent_channels, side / 8, side / 8});
  vae->decode(latents.narrow(0, 0, std::min<int64_t>(num, vae->run_options().batch_size)));  // warm-up
  device.synchronize();
  reset_gpu_peak();
  auto begin = Clock::now();
  vae->decode(latents);
  device.synchronize();
  const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  nlohmann::ordered_json out = {{"benchmark", "vae-decode"},
                                {"num", num},
                                {"resolution", side},
                                {"batch_size", vae->run_options().batch_size},
                                {"precision", precision_name(precision)},
                                {"seconds", seconds},
                                {"images_per_second", num / seconds},
                                {"threads", vm["threads"].as<int>()},
                                {"blas", blas_json()}};
  add_device_json(out, device);
  std::cout << json_text(out, 2) << std::endl;
  return 0;
}

int bench_fid_command(int argc, char** argv) {
  po::options_description options("bench fid options");
  options.add_options()
      ("num", po::value<int64_t>()->default_value(2000), "images per set (32x32x1, mini-CNN)")
      ("dim", po::value<int64_t>()->default_value(2048), "feature dimension for the statistics and distance")
      ("json", "print JSON only");
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("bench fid", "Times FID's parts: mini-CNN features, statistics, Frechet distance.", argc,
                          argv, options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  const int64_t n = vm["num"].as<int64_t>(), d = vm["dim"].as<int64_t>();
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  // Feature extraction (the network's weights do not change its speed).
  MiniCnn cnn(MiniCnnConfig{});
  at::Tensor images = at::randint(0, 256, {n, 32, 32, 1}, at::kByte);
  auto begin = Clock::now();
  for (int64_t start = 0; start < n; start += 500) cnn.features(images.narrow(0, start, std::min<int64_t>(500, n - start)));
  const double cnn_seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  // Streaming statistics and the distance at the Inception feature width.
  at::Tensor features = at::randn({n, d});
  begin = Clock::now();
  FeatureStats a, b;
  for (int64_t start = 0; start < n; start += 500) a.add(features.narrow(0, start, std::min<int64_t>(500, n - start)));
  const double stats_seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  b.add(at::randn({n, d}) * 1.1 + 0.1);
  begin = Clock::now();
  const double fid = frechet_distance(a, b);
  const double distance_seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  const nlohmann::ordered_json out = {{"benchmark", "fid"},
                                      {"num", n},
                                      {"dim", d},
                                      {"mini_cnn_images_per_second", n / cnn_seconds},
                                      {"stats_rows_per_second", n / stats_seconds},
                                      {"frechet_distance_seconds", distance_seconds},
                                      {"fid_of_random_sets", fid},
                                      {"threads", vm["threads"].as<int>()},
                                      {"blas", blas_json()}};
  std::cout << json_text(out, 2) << std::endl;
  return 0;
}

}  // namespace

int run_bench_command(int argc, char** argv) {
  return run_subcommand(
      "bench",
      "usage: difffit bench <train-step|sample|vae|fid|loader|sweep> [options]  (difffit bench <name> --help)\n"
      "  train-step  ms/step, peak memory, trainable params, optimizer and delta bytes per method\n"
      "  sample      sampler throughput (images/s)\n"
      "  vae         VAE decoder throughput (images/s)\n"
      "  fid         mini-CNN feature throughput, statistics and Frechet distance timings\n"
      "  loader      the training data loader alone (images/s)\n"
      "  sweep       coordinator overhead per run, scaling with worker ranks\n",
      argc, argv,
      {{"train-step", bench_train_step_command},
       {"sample", bench_sample_command},
       {"vae", bench_vae_command},
       {"fid", bench_fid_command},
       {"loader", run_bench_loader_command},
       {"sweep", run_bench_sweep_command}});
}

}  // namespace difffit
