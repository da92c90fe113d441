// The model's pixel range, [-1, 1], to the uint8 images that are written and scored.
#pragma once

#include <ATen/core/Tensor.h>

namespace difffit {

// (N,C,H,W) in [-1, 1] -> uint8 (N,H,W,C): clamp(127.5 x + 128, 0, 255), truncated (as
// ADM's sample scripts round).
at::Tensor to_uint8_images(const at::Tensor& samples);

}  // namespace difffit
