#include "worker/model/pixel_range.h"

#include <ATen/ATen.h>

namespace difffit {

at::Tensor to_uint8_images(const at::Tensor& samples) {
  return (127.5 * samples + 128.0).clamp(0, 255).to(at::kByte).permute({0, 2, 3, 1}).contiguous();
}

}  // namespace difffit
