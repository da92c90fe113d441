// How samples are drawn: the sampler settings that an experiment's sample: section, the
// sampling flags of `difffit sample` and `bench sample`, and a SampleRequest share. The
// defaults are the experiment's (DDIM-25); `difffit sample` defaults its flags to DiT's
// sample.py instead (DDPM-250, one batch).
#pragma once

#include <cstdint>
#include <optional>

#include "worker/diffusion/sampler_kind.h"

namespace difffit {

struct SampleConfig {
  int64_t num = 0;             // samples written by the run (0 = none)
  SamplerKind sampler = SamplerKind::Ddim;  // ddpm | ddim
  int64_t steps = 25;          // respacing "K": K steps, first and last included
  double cfg_scale = 1.0;      // guidance when > 1
  double eta = 0.0;            // DDIM eta
  std::optional<bool> clip_denoised;  // clamp x0 to [-1, 1]; unset = auto (in pixel space, not for latents)
  int64_t batch_size = 100;    // samples per batch (0 = all at once)
  int64_t call_size = 0;       // samples per model call (0 = the batch): fixed, the batch size stops mattering

  // clip_denoised resolved for a model in pixel space or not (DiTConfig::pixel_space).
  bool clip_for(bool pixel_space) const { return clip_denoised.value_or(pixel_space); }
};

}  // namespace difffit
