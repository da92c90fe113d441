// difffit bench sample | vae | fid: throughput of what a run does after training (the
// sampler, the VAE decoder, FID's parts), printed as JSON.
#include <ATen/ATen.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <iostream>

#include <nlohmann/json.hpp>

#include "app/bench_device.h"
#include "app/cli_options.h"
#include "app/commands.h"
#include "common/error.h"
#include "common/gpu_memory.h"
#include "common/json_text.h"
#include "common/platform.h"
#include "eval/feature_stats.h"
#include "eval/frechet_distance.h"
#include "eval/mini_cnn.h"
#include "worker/model/autoencoder_kl.h"
#include "worker/model/build_model.h"
#include "worker/sample/sample_generator.h"

namespace difffit {

// Under mpirun/srun the ranks share the samples out (as `difffit sample` and a run do):
// the JSON (rank 0's) has the whole set's images/s, each rank's busy seconds (its own
// block) and the gather's seconds, so the scaling with ranks and the idle share show.
int run_bench_sample_command(int argc, char** argv) {
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
  request.sample = sample_config_from(vm, int_flag_in(vm, "num", 0, INT64_MAX));
  if (request.sample.batch_size < 1) throw_usage("--batch-size must be at least 1");
  if (request.sample.num <= 0) request.sample.num = request.sample.batch_size * world;
  request.device = device.device;
  reset_peak_memory();
  reset_gpu_peak();
  if (ranks.comm) ranks.comm->barrier();
  auto begin = BenchClock::now();
  double busy = 0.0;  // this rank's own block, up to its last step
  generate_samples_across_ranks(*model, request, ranks.comm.get(), [&](int64_t done, int64_t total) {
    if (done == total) busy = std::chrono::duration<double>(BenchClock::now() - begin).count();
  });
  device.synchronize();
  const double seconds = std::chrono::duration<double>(BenchClock::now() - begin).count();
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
  add_gpu_peak_json(out, device);
  std::cout << json_text(out, 2) << std::endl;
  return 0;
}

// The SD AutoencoderKL's decoder at its default architecture (LibTorch's initial weights:
// the speed does not depend on them), on random latents.
int run_bench_vae_command(int argc, char** argv) {
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
  auto begin = BenchClock::now();
  vae->decode(latents);
  device.synchronize();
  const double seconds = std::chrono::duration<double>(BenchClock::now() - begin).count();
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
  add_gpu_peak_json(out, device);
  std::cout << json_text(out, 2) << std::endl;
  return 0;
}

int run_bench_fid_command(int argc, char** argv) {
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
  const int64_t n = int_flag_in(vm, "num", 2, 1 << 20), d = int_flag_in(vm, "dim", 1, 1 << 14);
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  // Feature extraction (the network's weights do not change its speed).
  MiniCnn cnn(MiniCnnConfig{});
  at::Tensor images = at::randint(0, 256, {n, 32, 32, 1}, at::kByte);
  auto begin = BenchClock::now();
  for (int64_t start = 0; start < n; start += 500) cnn.features(images.narrow(0, start, std::min<int64_t>(500, n - start)));
  const double cnn_seconds = std::chrono::duration<double>(BenchClock::now() - begin).count();
  // Streaming statistics and the distance at the Inception feature width.
  at::Tensor features = at::randn({n, d});
  begin = BenchClock::now();
  FeatureStats a, b;
  for (int64_t start = 0; start < n; start += 500) a.add(features.narrow(0, start, std::min<int64_t>(500, n - start)));
  const double stats_seconds = std::chrono::duration<double>(BenchClock::now() - begin).count();
  b.add(at::randn({n, d}) * 1.1 + 0.1);
  begin = BenchClock::now();
  const double fid = frechet_distance(a, b);
  const double distance_seconds = std::chrono::duration<double>(BenchClock::now() - begin).count();
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

}  // namespace difffit
