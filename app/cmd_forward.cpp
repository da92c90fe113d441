// difffit forward: the model on given inputs, for checking against the reference.
#include <ATen/ATen.h>
#include <torch/types.h>

#include <cmath>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/logging.h"
#include "worker/model/build_model.h"

namespace difffit {
namespace {

// Runs `fn` over row batches of size `batch` (0 = all at once) and concatenates.
template <typename Fn>
at::Tensor batched(int64_t n, int64_t batch, Fn fn) {
  if (batch <= 0 || batch >= n) return fn(0, n);
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < n; start += batch) parts.push_back(fn(start, std::min(batch, n - start)));
  return at::cat(parts, 0);
}

}  // namespace

int run_forward_command(int argc, char** argv) {
  po::options_description options("forward options");
  options.add_options()
      ("inputs", po::value<std::string>()->required(), "HDF5 with x (float32 N,C,H,W), t (int64 N), y (int64 N)")
      ("output", po::value<std::string>()->required(), "HDF5 to write: out, and out_cfg with --cfg-scale")
      ("cfg-scale", po::value<double>(), "also write out_cfg: first half of forward_with_cfg([x;x],[t;t],[y;null])")
      ("cfg-channels", po::value<std::string>()->default_value("reference"),
       "channels CFG guides: reference (first 3) | eps | all")
      ("batch-size", po::value<int64_t>()->default_value(0), "rows per forward pass (0 = all)");
  add_checkpoint_options(options);
  add_model_options(options);
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("forward", "Runs the DiT in eval mode on inputs from HDF5.", argc, argv, options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  DiTConfig config = model_config_from(vm);
  CfgChannels cfg_channels = parse_cfg_channels(vm["cfg-channels"].as<std::string>());
  if (vm.count("cfg-scale") && config.class_dropout_prob <= 0) {
    throw_usage("forward: --cfg-scale needs a null class (--class-dropout-prob > 0)");
  }

  Hdf5Reader in(vm["inputs"].as<std::string>());
  at::Tensor x = in.read("x", at::kFloat, 4);
  at::Tensor t = in.read("t", at::kLong, 1);
  at::Tensor y = in.read("y", at::kLong, 1);
  check_model_inputs(in, "x", x, t, y, config);

  const int64_t n = x.size(0), batch = vm["batch-size"].as<int64_t>();
  if (batch < 0) throw_usage("--batch-size must be >= 0 (0 = all rows at once)");
  if (vm.count("cfg-scale") && !std::isfinite(vm["cfg-scale"].as<double>()))
    throw_usage("--cfg-scale must be a finite number");
  ModelSource source = model_source_from(vm);
  check_output_path(vm["output"].as<std::string>(), "--output", {vm["inputs"].as<std::string>(), source.checkpoint, source.delta});
  DiT model = build_model(config, source);
  model->eval();
  torch::NoGradGuard no_grad;

  Hdf5Writer out(vm["output"].as<std::string>());
  out.write("out", batched(n, batch, [&](int64_t s, int64_t k) {
              return model->forward(x.narrow(0, s, k), t.narrow(0, s, k), y.narrow(0, s, k));
            }));
  if (vm.count("cfg-scale")) {
    const double scale = vm["cfg-scale"].as<double>();
    out.write("out_cfg", batched(n, batch, [&](int64_t s, int64_t k) {
                at::Tensor xs = x.narrow(0, s, k), ts = t.narrow(0, s, k), ys = y.narrow(0, s, k);
                at::Tensor null = at::full_like(ys, model->null_class());
                at::Tensor guided = model->forward_with_cfg(at::cat({xs, xs}), at::cat({ts, ts}),
                                                            at::cat({ys, null}), scale, cfg_channels);
                return guided.narrow(0, 0, k);
              }));
    out.write_string_attribute("cfg_scale", std::to_string(scale));
  }
  out.write_string_attribute("model", config.to_key_values());
  out.write_string_attribute("checkpoint", source.checkpoint);
  out.commit();
  log()->info("[forward] wrote {} rows to {}", n, vm["output"].as<std::string>());
  return 0;
}

}  // namespace difffit
