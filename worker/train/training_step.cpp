#include "worker/train/training_step.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>

#include <cmath>

#include "common/error.h"
#include "worker/model/autocast_guard.h"
#include "worker/train/adamw.h"
#include "worker/train/ema.h"

namespace difffit {

GaussianDiffusion::Losses batch_losses(DiTImpl& model, const GaussianDiffusion& diffusion, const at::Tensor& x,
                                       const at::Tensor& y, bool bf16, const DataParallel& dp) {
  const int64_t global = x.size(0) * dp.world;
  std::vector<int64_t> shape = x.sizes().vec();
  shape[0] = global;
  at::Tensor t = at::randint(0, diffusion.num_steps(), {global}, at::kLong);
  at::Tensor noise = at::randn(shape, at::kFloat);
  at::Tensor drop;
  if (model.is_training() && model.y_embedder->dropout_prob > 0) {
    drop = at::rand({global}, at::kFloat) < model.y_embedder->dropout_prob;
  }
  if (dp.active()) {
    // The loader gives rank r the images at global positions r, r + W, r + 2W, ...
    at::Tensor mine = at::arange(dp.rank, global, dp.world, at::kLong);
    t = t.index_select(0, mine);
    noise = noise.index_select(0, mine);
    if (drop.defined()) drop = drop.index_select(0, mine);
  }
  t = t.to(x.device());
  noise = noise.to(x.device());
  at::Tensor x_t = diffusion.q_sample(x, t, noise);
  at::Tensor output;
  {
    AutocastGuard autocast(bf16, x.device().type());
    output = model.forward(x_t, diffusion.model_timesteps(t), y, drop);
  }
  return diffusion.training_losses(output.to(at::kFloat), x, x_t, t, noise);
}

TrainingStep::TrainingStep(DiTImpl& model, const GaussianDiffusion& diffusion, std::vector<at::Tensor> params,
                           AdamW& optimizer, Ema& ema, StepSettings settings, DataParallel dp)
    : model_(model), diffusion_(diffusion), params_(std::move(params)), optimizer_(optimizer), ema_(ema),
      settings_(std::move(settings)), dp_(dp) {
  if (settings_.grad_accum < 1) throw_usage("TrainingStep: grad_accum must be at least 1");
}

StepLosses TrainingStep::run(const std::function<std::pair<at::Tensor, at::Tensor>()>& next_batch, int64_t step) {
  optimizer_.zero_grad();
  StepLosses out;
  const double micro_batches = static_cast<double>(settings_.grad_accum);
  for (int64_t micro = 0; micro < settings_.grad_accum; ++micro) {
    const auto [x, y] = next_batch();
    GaussianDiffusion::Losses losses = batch_losses(model_, diffusion_, x, y, settings_.bf16, dp_);
    at::Tensor loss = losses.loss.mean() / micro_batches;
    loss.backward();
    out.loss += loss.item<double>();
    out.mse += losses.mse.mean().item<double>() / micro_batches;
    out.vb += losses.vb.mean().item<double>() / micro_batches;
  }
  if (dp_.active()) {
    average_gradients(params_, dp_);
    const auto sums = sum_over_ranks({out.loss, out.mse, out.vb}, dp_);
    out = {sums[0] / dp_.world, sums[1] / dp_.world, sums[2] / dp_.world};
  }
  if (!std::isfinite(out.loss)) {
    throw_data("training diverged: loss is " + std::to_string(out.loss) + " at step " + std::to_string(step + 1) +
               (settings_.context.empty() ? "" : " (" + settings_.context + ")"));
  }
  if (settings_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params_, settings_.grad_clip);
  optimizer_.step();
  ema_.update(step);
  return out;
}

}  // namespace difffit
