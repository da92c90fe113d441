// Generates samples from a DiT with the reference's loops (CFG on a doubled batch, the
// first half kept). By default every sample has its own random stream, seeded from
// (seed, its index): its class, x_T and every step's noise are the same whatever the
// batch size and however many ranks share the work, so results compare across machines
// (bit for bit across rank counts; across batch sizes when the model is called on a
// fixed number of samples, `call_size`, else up to the rounding of its matrix products,
// whose BLAS kernels depend on the batch).
// SampleSeeding::Reference draws from one generator in batch order instead, as DiT's
// sample.py does (with the same seed it reproduces that script's samples).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <string>

#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/diffusion/samplers.h"
#include "worker/model/dit.h"
#include "worker/sample/sample_config.h"

namespace difffit {

class Communicator;

// Every sample's latent is kept in memory (and gathered on every rank): "" when `n` samples
// of this model fit the machine's memory, else "N samples need X GB for their latents ...".
std::string latents_exceed_memory(const DiTConfig& config, int64_t n);

enum class SampleSeeding { PerSample, Reference };
SampleSeeding parse_sample_seeding(const std::string& name);  // "per-sample" | "reference"

// The seed of sample `index`'s own stream: (SplitMix64(seed) + index) mod 2^32, as the
// CPU generator (MT19937) keeps 32 bits of a seed; consecutive indices never collide.
// The stream gives z (1,C,H,W), then y (1), then one (1,C,H,W) normal draw per step.
uint64_t per_sample_seed(uint64_t seed, int64_t index);

// One sampling job: the sampler settings (an experiment's sample: section, or the sampling
// flags) with what only a job has: its seed, streams, rank share and device.
struct SampleRequest {
  SampleConfig sample;              // num, sampler, steps, guidance, eta, clipping, batch and call sizes
  CfgChannels cfg_channels = CfgChannels::Reference;
  uint64_t seed = 0;                // noise and labels
  SampleSeeding seeding = SampleSeeding::PerSample;
  int64_t first_index = 0;          // PerSample: the global index of this request's first sample
  int64_t timesteps = 1000;         // T of the base process
  at::Tensor init_noise;            // optional (N,C,H,W): x_T instead of drawn noise
  at::Tensor init_labels;           // optional (N): labels instead of drawn ones
  c10::Device device = c10::kCPU;   // where the model runs (it is moved there)
};

struct SampleResult {
  at::Tensor latents;  // float32 (N,C,H,W), the model-space samples
  at::Tensor labels;   // int64 (N)
};

// `on_step(samples_done, total)` after every sampler step.
SampleResult generate_samples(DiTImpl& model, const SampleRequest& request,
                              const std::function<void(int64_t, int64_t)>& on_step = nullptr);

// The `request.num` samples shared out over the ranks of `comm`: each rank samples its
// row_share(num, batch_size, ...) (whole batches counted from sample 0, common/communicator.h)
// and every rank gets all of them, in index order. Each batch is the same model call
// whatever the number of ranks, so the samples are bit-identical too (a model's output
// rows can round differently when the batch is cut differently: BLAS picks its kernels by
// matrix size). Batch size 0 ("all at once") means one batch per rank, ceil(num / ranks)
// samples: set a batch size for samples that do not depend on the rank count. `comm` null
// or of one rank: generate_samples. `on_step` reports this rank's own progress. Needs
// PerSample seeding over several ranks. `between_batches` runs on every rank after each
// round of batches (as many rounds on every rank, a rank whose share is done included), or
// after every sampler step in one process: the place for a check that may throw, such as a
// stop agreed over the ranks.
SampleResult generate_samples_across_ranks(DiTImpl& model, const SampleRequest& request, Communicator* comm,
                                           const std::function<void(int64_t, int64_t)>& on_step = nullptr,
                                           const std::function<void()>& between_batches = nullptr);

}  // namespace difffit
