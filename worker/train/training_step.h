// One optimizer step as every run takes it, and as `difffit bench train-step` times it:
// zero the gradients, the hybrid loss of each micro-batch (grad accumulation), the
// data-parallel average, the finite check, clipping, AdamW, EMA.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "worker/diffusion/gaussian_diffusion.h"
#include "worker/model/dit.h"
#include "worker/train/data_parallel.h"

namespace difffit {

class AdamW;
class Ema;

// The objective on one batch (x on its device, labels y): draws t, then the noise, then the
// label dropout (in training mode) — the reference's order — all from the CPU generator on
// every device, so runs agree across devices; runs the model (under bf16 autocast when asked)
// and returns the per-sample hybrid losses in float32. Under data parallelism the draws are
// made for the whole global batch and each rank keeps the rows of its images, so the ranks
// together see exactly what one process would.
GaussianDiffusion::Losses batch_losses(DiTImpl& model, const GaussianDiffusion& diffusion, const at::Tensor& x,
                                       const at::Tensor& y, bool bf16, const DataParallel& dp = {});

struct StepSettings {
  int64_t grad_accum = 1;  // micro-batches per step
  double grad_clip = 0;    // max gradient norm (0: none)
  bool bf16 = false;       // autocast
  std::string context;     // named in the divergence error, e.g. "method difffit, lr 0.001"
};

// The step's mean losses (over micro-batches and ranks).
struct StepLosses {
  double loss = 0, mse = 0, vb = 0;
};

class TrainingStep {
 public:
  // `params` are the trainable tensors the optimizer and EMA hold, in their order.
  TrainingStep(DiTImpl& model, const GaussianDiffusion& diffusion, std::vector<at::Tensor> params, AdamW& optimizer,
               Ema& ema, StepSettings settings, DataParallel dp = {});

  // Takes step `step` + 1 on the micro-batches `next_batch` gives (images, labels on the
  // model's device). A non-finite loss is a data error naming the step and the context.
  StepLosses run(const std::function<std::pair<at::Tensor, at::Tensor>()>& next_batch, int64_t step);

 private:
  DiTImpl& model_;
  const GaussianDiffusion& diffusion_;
  std::vector<at::Tensor> params_;
  AdamW& optimizer_;
  Ema& ema_;
  StepSettings settings_;
  DataParallel dp_;
};

}  // namespace difffit
