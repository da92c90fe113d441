// difffit loss: the hybrid training loss on given inputs and noise, per sample.
#include <ATen/ATen.h>
#include <torch/types.h>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/logging.h"
#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/model/build_model.h"

namespace difffit {

int run_loss_command(int argc, char** argv) {
  po::options_description options("loss options");
  options.add_options()
      ("inputs", po::value<std::string>()->required(),
       "HDF5 with x_start (float32 N,C,H,W), t (int64 N), noise (like x_start), y (int64 N)")
      ("output", po::value<std::string>()->required(), "HDF5 to write: mse, vb, loss (float32 N)")
      ("timesteps", po::value<int64_t>()->default_value(1000), "T of the diffusion process");
  add_checkpoint_options(options);
  add_model_options(options);
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("loss", "Computes the reference's hybrid loss terms (eval mode: no label dropout).",
                          argc, argv, options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  DiTConfig config = model_config_from(vm);
  const int64_t T = int_flag_in(vm, "timesteps", kMinLinearScheduleTimesteps, kMaxTimesteps);
  Hdf5Reader in(vm["inputs"].as<std::string>());
  at::Tensor x0 = in.read("x_start", at::kFloat, 4);
  at::Tensor t = in.read("t", at::kLong, 1);
  at::Tensor noise = in.read("noise", at::kFloat, 4);
  at::Tensor y = in.read("y", at::kLong, 1);
  if (!noise.sizes().equals(x0.sizes())) throw_data(in.path() + ": 'noise' must have the shape of 'x_start'");
  check_model_inputs(in, "x_start", x0, t, y, config);
  if (t.max().item<int64_t>() >= T) {
    throw_data(in.path() + ": 't' must be in 0.." + std::to_string(T - 1));
  }

  ModelSource source = model_source_from(vm);
  check_output_path(vm["output"].as<std::string>(), "--output", {vm["inputs"].as<std::string>(), source.checkpoint, source.delta});
  DiT model = build_model(config, source);
  model->eval();
  torch::NoGradGuard no_grad;
  DiffusionConfig diffusion_config;
  diffusion_config.timesteps = T;
  diffusion_config.learned_variance = config.learn_sigma;
  GaussianDiffusion diffusion(diffusion_config);
  at::Tensor x_t = diffusion.q_sample(x0, t, noise);
  GaussianDiffusion::Losses losses =
      diffusion.training_losses(model->forward(x_t, diffusion.model_timesteps(t), y), x0, x_t, t, noise);

  Hdf5Writer out(vm["output"].as<std::string>());
  out.write("mse", losses.mse);
  out.write("vb", losses.vb);
  out.write("loss", losses.loss);
  out.commit();
  log()->info("[loss] mean loss {:.6f} over {} samples", losses.loss.mean().item<double>(), x0.size(0));
  return 0;
}

}  // namespace difffit
