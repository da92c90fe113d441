// Resizing for feature networks: PIL's float bicubic ("clean" resize, as clean-fid
// does it) reproduced exactly, so clean-mode features do not depend on a library's
// interpolation quirks.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace difffit {

// x: float (N, C, H, W) with values in PIL's units (e.g. 0..255). Each channel is
// resized as a PIL mode-'F' image with Image.resize((out_w, out_h), BICUBIC): the
// separable antialiased filter (a = -0.5, support 2 * max(scale, 1)), horizontal
// pass first, each pass accumulated in double and stored as float32.
at::Tensor resize_pil_bicubic(const at::Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace difffit
