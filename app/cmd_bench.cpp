// difffit bench: timings that print JSON. This file: `train-step`, a full training step
// (forward, hybrid loss, backward, AdamW, EMA) per method, side by side in one process, on
// the CPU or CUDA; and the list of benchmarks (the others: cmd_bench_inference.cpp,
// cmd_bench_loader.cpp, cmd_bench_sweep.cpp).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/types.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "app/bench_device.h"
#include "app/cli_options.h"
#include "app/commands.h"
#include "common/error.h"
#include "common/gpu_memory.h"
#include "common/json_text.h"
#include "common/platform.h"
#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/model/build_model.h"
#include "worker/model/delta.h"
#include "worker/model/peft_method.h"
#include "worker/train/adamw.h"
#include "worker/train/ema.h"
#include "worker/train/training_step.h"

namespace difffit {
namespace {

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
    auto begin = BenchClock::now();
    step.run([&] { return std::make_pair(x, y); }, i);
    device.synchronize();
    if (i >= o.warmup) times.push_back(std::chrono::duration<double, std::milli>(BenchClock::now() - begin).count());
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
  const bool several = method == "all" || method.find(',') != std::string::npos;
  if (several && vm.count("option"))
    throw_usage("--option goes with one --method (options differ between methods), not with '" + method + "'");
  if (method == "all") {
    for (const auto& name : method_names()) methods.push_back(make_method_config(name));
  } else if (several) {
    std::stringstream names(method);
    for (std::string name; std::getline(names, name, ',');) methods.push_back(make_method_config(name));
  } else {
    methods.push_back(method_config_from(vm));
  }
  StepBenchOptions step_options;
  step_options.batch = int_flag_in(vm, "batch", 1, 1 << 20);
  step_options.steps = int_flag_in(vm, "steps", 1, 1 << 20);
  step_options.warmup = int_flag_in(vm, "warmup", 0, 1 << 20);
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
  add_device_json(out, device);
  out["blas"] = blas_json();
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
       {"sample", run_bench_sample_command},
       {"vae", run_bench_vae_command},
       {"fid", run_bench_fid_command},
       {"loader", run_bench_loader_command},
       {"sweep", run_bench_sweep_command}});
}

}  // namespace difffit
