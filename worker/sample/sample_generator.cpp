#include "worker/sample/sample_generator.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include <cmath>

#include "common/communicator.h"
#include "common/error.h"
#include "common/platform.h"

namespace difffit {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

void check_request(const DiTConfig& config, const SampleRequest& request) {
  const SampleConfig& s = request.sample;
  const int64_t n = s.num;
  if (n <= 0) throw_usage("sample: --num must be positive");
  if (!std::isfinite(s.cfg_scale) || s.cfg_scale < 0)
    throw_usage("sample: the CFG scale must be a finite number >= 0 (1 = no guidance)");
  if (!(s.eta >= 0 && s.eta <= 1)) throw_usage("sample: DDIM's eta must be in [0, 1]");
  if (s.batch_size < 0) throw_usage("sample: the batch size must be >= 0 (0 = all at once)");
  if (request.device.is_cuda() && !at::hasCUDA())
    throw_usage("sample: device " + request.device.str() + ", but this LibTorch has no CUDA");
  const std::string too_many = latents_exceed_memory(config, n);
  if (!too_many.empty()) throw_usage("sample: " + too_many);
  if (s.cfg_scale > 1.0 && config.class_dropout_prob <= 0) {
    throw_usage("sample: CFG needs a model with a null class (class_dropout_prob > 0)");
  }
  if (s.call_size < 0) throw_usage("sample: the call size must be >= 0");
  if (s.call_size > 0 && s.batch_size > 0 && s.batch_size % s.call_size != 0)
    throw_usage("sample: the batch size (" + std::to_string(s.batch_size) + ") must be a multiple of the call size (" +
                std::to_string(s.call_size) + "), so every model call holds the same samples whatever the batch");
  if (request.init_noise.defined()) {
    std::vector<int64_t> want = {n, config.in_channels, config.input_size, config.input_size};
    if (!request.init_noise.sizes().equals(want)) {
      throw_data("sample: init noise has shape " + c10::str(request.init_noise.sizes()) + ", expected " +
                 c10::str(at::IntArrayRef(want)));
    }
  }
  if (request.init_labels.defined() && request.init_labels.numel() &&
      (request.init_labels.size(0) != n || request.init_labels.min().item<int64_t>() < 0 ||
       request.init_labels.max().item<int64_t>() >= config.num_classes)) {
    throw_data("sample: labels must be N = " + std::to_string(n) + " values in 0.." +
               std::to_string(config.num_classes - 1));
  }
}

// Where one batch's random numbers come from: x_T, y and the step noise.
class BatchRandomness {
 public:
  // Reference: `shared` in batch order. PerSample: one stream per sample of the batch.
  BatchRandomness(const SampleRequest& request, at::Generator shared, int64_t start, int64_t size)
      : shared_(std::move(shared)) {
    if (request.seeding == SampleSeeding::PerSample) {
      for (int64_t i = 0; i < size; ++i) {
        own_.push_back(at::make_generator<at::CPUGeneratorImpl>(
            per_sample_seed(request.seed, request.first_index + start + i)));
      }
    }
  }
  // sample_ddp.py order: z first, then y. PerSample: one row per sample, whatever shape[0].
  at::Tensor noise(at::IntArrayRef shape) {
    if (own_.empty()) return at::randn(shape, shared_, at::kFloat);
    std::vector<at::Tensor> rows;
    for (auto& g : own_) rows.push_back(at::randn(one_row(shape), g, at::kFloat));
    return at::cat(rows);
  }
  at::Tensor labels(int64_t size, int64_t num_classes) {
    if (own_.empty()) return at::randint(0, num_classes, {size}, shared_, at::kLong);
    std::vector<at::Tensor> rows;
    for (auto& g : own_) rows.push_back(at::randint(0, num_classes, {1}, g, at::kLong));
    return at::cat(rows);
  }
  // A CFG batch is [cond; uncond] and the model reads the cond half only: per-sample
  // streams draw for that half and repeat it, so the kept samples do not depend on CFG's
  // doubling (the reference draws both halves from its one generator).
  at::Tensor step_noise(at::IntArrayRef shape) {
    at::Tensor drawn = noise(shape);
    if (own_.empty() || shape[0] == drawn.size(0)) return drawn;
    return at::cat(std::vector<at::Tensor>(shape[0] / drawn.size(0), drawn));
  }

 private:
  static std::vector<int64_t> one_row(at::IntArrayRef shape) {
    std::vector<int64_t> row(shape.begin(), shape.end());
    row[0] = 1;
    return row;
  }
  at::Generator shared_;
  std::vector<at::Generator> own_;
};

// The model's prediction for a batch of `b` samples, made in calls of `call` samples
// counted from the batch's first one (CFG: each call gets its samples' cond and uncond
// rows, as [cond; uncond] again), so a sample's output depends on its call's samples only.
DenoiserFn in_calls(DiTImpl& model, const at::Tensor& y, const SampleRequest& request, bool use_cfg) {
  auto call = [&model, &request, use_cfg](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
    if (!use_cfg) return model.forward(x, t, y);
    const at::Tensor y2 = at::cat({y, at::full_like(y, model.null_class())});
    return model.forward_with_cfg(x, t, y2, request.sample.cfg_scale, request.cfg_channels);
  };
  const int64_t b = y.size(0), size = request.sample.call_size;
  if (size <= 0 || size >= b) return [call, y](const at::Tensor& x, const at::Tensor& t) { return call(x, t, y); };
  return [call, y, b, size, use_cfg](const at::Tensor& x, const at::Tensor& t) {
    std::vector<at::Tensor> cond, uncond;
    for (int64_t s = 0; s < b; s += size) {
      const int64_t c = std::min(size, b - s);
      if (!use_cfg) {
        cond.push_back(call(x.narrow(0, s, c), t.narrow(0, s, c), y.narrow(0, s, c)));
        continue;
      }
      const at::Tensor out = call(at::cat({x.narrow(0, s, c), x.narrow(0, b + s, c)}),
                                  at::cat({t.narrow(0, s, c), t.narrow(0, b + s, c)}), y.narrow(0, s, c));
      cond.push_back(out.narrow(0, 0, c));
      uncond.push_back(out.narrow(0, c, c));
    }
    if (use_cfg) cond.insert(cond.end(), uncond.begin(), uncond.end());
    return at::cat(cond);
  };
}

}  // namespace

std::string latents_exceed_memory(const DiTConfig& config, int64_t n) {
  const double bytes = static_cast<double>(n) * config.in_channels * config.input_size * config.input_size * 4.0;
  if (!exceeds_memory(bytes)) return "";
  return std::to_string(n) + " samples need " + std::to_string(static_cast<int64_t>(bytes / 1e9)) +
         " GB for their latents alone, more than this machine's memory";
}

SampleSeeding parse_sample_seeding(const std::string& name) {
  if (name == "per-sample") return SampleSeeding::PerSample;
  if (name == "reference") return SampleSeeding::Reference;
  throw_usage("unknown seeding '" + name + "' (per-sample | reference)");
}

uint64_t per_sample_seed(uint64_t seed, int64_t index) {
  return (splitmix64(seed) + static_cast<uint64_t>(index)) & 0xFFFFFFFFULL;
}

SampleResult generate_samples(DiTImpl& model, const SampleRequest& request,
                              const std::function<void(int64_t, int64_t)>& on_step) {
  const DiTConfig& config = model.config();
  check_request(config, request);
  const int64_t n = request.sample.num;
  const bool use_cfg = request.sample.cfg_scale > 1.0;

  DiffusionConfig diffusion_config;
  diffusion_config.timesteps = request.timesteps;
  diffusion_config.respacing = std::to_string(request.sample.steps);
  diffusion_config.learned_variance = config.learn_sigma;
  GaussianDiffusion diffusion(diffusion_config);
  SamplerOptions options;
  options.kind = request.sample.sampler;
  options.eta = request.sample.eta;
  options.clip_denoised = request.sample.clip_for(config.pixel_space());

  at::Generator shared = at::make_generator<at::CPUGeneratorImpl>(request.seed);
  const at::Device device = request.device;
  model.to(device);
  model.eval();
  torch::NoGradGuard no_grad;
  const int64_t batch = request.sample.batch_size > 0 ? std::min(request.sample.batch_size, n) : n;
  std::vector<at::Tensor> all_samples, all_labels;
  int64_t done = 0;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t b = std::min(batch, n - start);
    BatchRandomness random(request, shared, start, b);
    at::Tensor z = request.init_noise.defined()
                       ? request.init_noise.narrow(0, start, b).contiguous()
                       : random.noise({b, config.in_channels, config.input_size, config.input_size});
    at::Tensor y = request.init_labels.defined() && request.init_labels.numel()
                       ? request.init_labels.narrow(0, start, b).contiguous()
                       : random.labels(b, config.num_classes);
    z = z.to(device);
    y = y.to(device);
    const at::Tensor x_T = use_cfg ? at::cat({z, z}) : z;
    const DenoiserFn denoiser = in_calls(model, y, request, use_cfg);
    StepNoiseFn step_noise = [&random](at::IntArrayRef shape) { return random.step_noise(shape); };
    at::Tensor out = sample_loop(diffusion, denoiser, x_T, options, step_noise, [&](int64_t step, int64_t steps) {
      if (on_step) on_step(done + b * step / steps, n);
    });
    done += b;
    all_samples.push_back((use_cfg ? out.narrow(0, 0, b) : out).cpu());
    all_labels.push_back(y.cpu());
  }
  return {at::cat(all_samples), at::cat(all_labels)};
}

SampleResult generate_samples_across_ranks(DiTImpl& model, const SampleRequest& request, Communicator* comm,
                                           const std::function<void(int64_t, int64_t)>& on_step,
                                           const std::function<void()>& between_batches) {
  if (!comm || comm->size() == 1) {
    if (!between_batches) return generate_samples(model, request, on_step);
    // One process: the check after every sampler step is as good as one after each batch.
    return generate_samples(model, request, [&](int64_t done, int64_t total) {
      if (on_step) on_step(done, total);
      between_batches();
    });
  }
  if (request.seeding != SampleSeeding::PerSample)
    throw_usage("sample: reference seeding draws from one generator in order and cannot be shared over " +
                std::to_string(comm->size()) + " ranks: use per-sample seeding");
  check_request(model.config(), request);
  const int64_t n = request.sample.num;
  const auto [first, count] = row_share(n, request.sample.batch_size, comm->rank(), comm->size());
  const DiTConfig& config = model.config();
  at::Tensor latents = at::zeros({count, config.in_channels, config.input_size, config.input_size}, at::kFloat);
  at::Tensor labels = at::zeros({count}, at::kLong);
  // Batch by batch, in rounds every rank takes part in (the largest share's batch count), so
  // `between_batches` (a stop agreed over the ranks) runs at the same point on every rank.
  int64_t largest = 1;
  for (int r = 0; r < comm->size(); ++r)
    largest = std::max(largest, row_share(n, request.sample.batch_size, r, comm->size()).count);
  const int64_t batch = request.sample.batch_size > 0 ? request.sample.batch_size : largest;  // 0: one batch a rank
  const int64_t rounds = (largest + batch - 1) / batch;
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t start = round * batch, b = std::min(batch, count - start);
    if (b > 0) {
      SampleRequest mine = request;
      mine.sample.num = b;
      mine.sample.batch_size = b;
      mine.first_index = request.first_index + first + start;
      if (request.init_noise.defined()) mine.init_noise = request.init_noise.narrow(0, first + start, b);
      if (request.init_labels.defined() && request.init_labels.numel())
        mine.init_labels = request.init_labels.narrow(0, first + start, b);
      SampleResult result = generate_samples(model, mine, [&](int64_t done, int64_t) {
        if (on_step) on_step(start + done, count);
      });
      latents.narrow(0, start, b).copy_(result.latents);
      labels.narrow(0, start, b).copy_(result.labels);
    }
    if (between_batches) between_batches();
  }
  return {allgather_rows(*comm, latents, n, request.sample.batch_size),
          allgather_rows(*comm, labels, n, request.sample.batch_size)};
}

}  // namespace difffit
