#include "worker/run/run_sampling.h"

#include <algorithm>

#include "common/communicator.h"
#include "worker/model/vae_loader.h"

namespace difffit {

SampleRequest run_sample_request(const ExperimentConfig& config, int64_t num) {
  SampleRequest request;
  request.num = num;
  request.sampler = config.sample.sampler;
  request.steps = config.sample.steps;
  request.cfg_scale = config.sample.cfg_scale;
  request.eta = config.sample.eta;
  request.clip_denoised = config.clip_samples();
  request.batch_size = config.sample.batch_size;
  request.call_size = config.sample.call_size;
  request.timesteps = config.train.timesteps;
  request.seed = derive_seed(config, "sample");
  request.device = device_kind_name(config.train.device);
  return request;
}

SamplesFile draw_run_samples(DiTImpl& model, const ExperimentConfig& config, int64_t num, Communicator* ranks,
                             const std::function<void(int64_t, int64_t)>& on_step) {
  const SampleResult samples = generate_samples_across_ranks(model, run_sample_request(config, num), ranks, on_step);
  LatentDecoding decoding;
  decoding.vae = resolve_vae_weights(config.eval.vae);
  decoding.device = device_kind_name(config.train.device);
  decoding.batch_size = std::min<int64_t>(std::max<int64_t>(config.sample.batch_size, 1), 16);
  decoding.bf16 = config.train.precision == Precision::Bf16;
  return samples_with_images(samples, decoding, ranks);
}

}  // namespace difffit
