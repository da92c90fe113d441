// difffit sample: draw samples from a checkpoint (+ delta) with DDPM or DDIM; under
// mpirun/srun the ranks share the samples out and rank 0 writes the one file.
#include <ATen/ATen.h>

#include "app/cli_options.h"
#include "app/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/logging.h"
#include "common/progress_bar.h"
#include "common/torch_device.h"
#include "worker/model/build_model.h"
#include "worker/model/vae_loader.h"
#include "worker/sample/sample_generator.h"
#include "worker/sample/samples_file.h"

namespace difffit {

int run_sample_command(int argc, char** argv) {
  po::options_description options("sample options");
  options.add_options()("num", po::value<int64_t>()->default_value(16), "number of samples");
  SampleConfig defaults;  // DiT's sample.py: DDPM-250, one batch
  defaults.sampler = SamplerKind::Ddpm;
  defaults.steps = 250;
  defaults.batch_size = 0;
  add_sample_options(options, defaults);
  options.add_options()
      ("cfg-channels", po::value<std::string>()->default_value("reference"), "reference (first 3) | eps | all")
      ("seed", po::value<uint64_t>()->default_value(0), "seed of the noise and labels")
      ("seeding", po::value<std::string>()->default_value("per-sample"),
       "per-sample (each sample its own stream: the same samples for any batch size or rank count) | "
       "reference (one stream in batch order, as DiT's sample.py)")
      ("device", po::value<std::string>()->default_value("cpu"), "cpu | cuda | cuda:K (noise is drawn on the CPU)")
      ("init-noise", po::value<std::string>()->default_value(""), "HDF5 with z (N,C,H,W float32) and y (int64 N)")
      ("vae", po::value<std::string>()->default_value(""), "AutoencoderKL weights: decode latent samples into images")
      ("output", po::value<std::string>()->required(), "HDF5 to write: latents, y, images");
  add_checkpoint_options(options);
  add_model_options(options);
  add_thread_option(options);
  po::variables_map vm;
  if (!parse_command_line("sample", "Samples from a DiT (reference DDPM/DDIM loops, optional CFG).", argc, argv,
                          options, vm)) {
    return 0;
  }
  apply_thread_option(vm);
  DiTConfig config = model_config_from(vm);
  SampleRequest request;
  request.sample = sample_config_from(vm, vm["num"].as<int64_t>());
  request.cfg_channels = parse_cfg_channels(vm["cfg-channels"].as<std::string>());
  request.seed = vm["seed"].as<uint64_t>();
  request.seeding = parse_sample_seeding(vm["seeding"].as<std::string>());
  request.device = parse_torch_device(vm["device"].as<std::string>(), "sample: --device");
  const std::string init = vm["init-noise"].as<std::string>();
  if (!init.empty()) {
    Hdf5Reader in(init);
    request.init_noise = in.read("z", at::kFloat, 4);
    if (request.init_noise.size(0) == 0) throw_data(init + ": dataset 'z' holds no rows (no noise to sample from)");
    if (!vm["num"].defaulted() && vm["num"].as<int64_t>() != request.init_noise.size(0))
      throw_usage("sample: --num " + std::to_string(vm["num"].as<int64_t>()) + ", but --init-noise " + init + " holds " +
                  std::to_string(request.init_noise.size(0)) + " rows (it sets the count: leave --num out)");
    request.sample.num = request.init_noise.size(0);
    if (in.has("y")) request.init_labels = in.read("y", at::kLong, 1);
  }

  LaunchRanks ranks = join_launch_ranks(&argc, &argv, request.device.is_cuda());
  const int rank = ranks.comm ? ranks.comm->rank() : 0, world = ranks.comm ? ranks.comm->size() : 1;
  ModelSource source = model_source_from(vm);
  check_output_path(vm["output"].as<std::string>(), "--output", {source.checkpoint, source.delta, resolve_vae_weights(vm["vae"].as<std::string>())});
  DiT model = build_model(config, source);

  ProgressBar progress("[sample]", row_share(request.sample.num, request.sample.batch_size, rank, world).count);
  SampleResult result = generate_samples_across_ranks(*model, request, ranks.comm.get(),
                                                      [&](int64_t done, int64_t) { progress.update(done); });
  progress.finish();
  if (rank != 0) return 0;  // rank 0 holds every sample and writes the one file

  LatentDecoding decoding;
  decoding.vae = vm["vae"].as<std::string>();
  decoding.device = request.device;
  SamplesFile file = samples_with_images(result, decoding);
  if (!file.images.defined())
    log()->warn("[sample] {} model channels: no 'images' dataset is written (pass --vae FILE, or decode later with "
                "`difffit vae decode`)",
                config.in_channels);
  file.attributes["model"] = config.to_key_values();
  file.attributes["sampler"] = sampler_name(request.sample.sampler) + std::to_string(request.sample.steps);
  file.attributes["cfg_scale"] = std::to_string(request.sample.cfg_scale);
  file.attributes["seed"] = std::to_string(request.seed);
  file.attributes["seeding"] = vm["seeding"].as<std::string>();
  write_samples_file(vm["output"].as<std::string>(), file);
  log()->info("[sample] wrote {} samples to {}", request.sample.num, vm["output"].as<std::string>());
  return 0;
}

}  // namespace difffit
