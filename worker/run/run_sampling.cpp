#include "worker/run/run_sampling.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "common/communicator.h"
#include "common/error.h"
#include "common/stop_signals.h"
#include "common/torch_device.h"
#include "worker/model/vae_loader.h"
#include "worker/train/data_parallel.h"

namespace difffit {

SampleRequest run_sample_request(const ExperimentConfig& config, int64_t num) {
  SampleRequest request;
  request.sample = config.sample;
  request.sample.num = num;
  request.timesteps = config.train.timesteps;
  request.seed = derive_seed(config, "sample");
  request.device = torch_device(config.train.device);
  return request;
}

void stop_if_signalled(Communicator* ranks) {
  if (const int signal = agreed_stop_signal(stop_signal(), data_parallel_over(ranks))) throw StoppedBySignal{signal};
}

SamplesFile draw_run_samples(DiTImpl& model, const ExperimentConfig& config, int64_t num, Communicator* ranks,
                             const std::function<void(int64_t, int64_t)>& on_step) {
  // Over several ranks a stop is agreed after each round of batches (every rank takes part),
  // in one process after every sampler step.
  const SampleResult samples = generate_samples_across_ranks(model, run_sample_request(config, num), ranks, on_step,
                                                             [ranks] { stop_if_signalled(ranks); });
  if (!at::isfinite(samples.latents).all().item<bool>())
    throw_data(config.run_dir() + ": the samples hold NaN or Inf: the model's weights (base checkpoint " +
               (config.base_checkpoint.empty() ? std::string("none: trained from scratch") : config.base_checkpoint) +
               ", then " + std::to_string(config.train.steps) + " steps) are not finite; nothing is scored");
  LatentDecoding decoding;
  decoding.vae = resolve_vae_weights(config.eval.vae);
  decoding.device = torch_device(config.train.device);
  decoding.batch_size = std::min<int64_t>(std::max<int64_t>(config.sample.batch_size, 1), 16);
  decoding.bf16 = config.train.precision == Precision::Bf16;
  // Ranks decode uneven shares, so over several ranks the stop is agreed before and after.
  if (!ranks || ranks->size() == 1) {
    decoding.after_batch = [] { stop_if_signalled(nullptr); };
  } else {
    stop_if_signalled(ranks);
  }
  SamplesFile file = samples_with_images(samples, decoding, ranks);
  stop_if_signalled(ranks);
  return file;
}

}  // namespace difffit
