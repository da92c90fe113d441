// Pillow-exact resizing of 8-bit images (Pillow 9.x, Resample.c semantics), and the
// ADM center crop that DiT's training script applies to every image:
//   while min(W, H) >= 2 * size: resize to (W // 2, H // 2) with BOX
//   resize by size / min(W, H) (Python round) with BICUBIC; center crop, floor offsets.
// Pillow resizes 8-bit images in two separable passes (horizontal first, then vertical)
// with coefficients quantised to 22 fractional bits and a uint8 image in between;
// this reproduces that arithmetic bit for bit.
#pragma once

#include <cstdint>
#include <string>

#include "common/image_io.h"

namespace difffit {

enum class ResampleFilter {
  Box,      // area average, support 0.5 (scaled when downscaling)
  Bicubic,  // Keys cubic with a = -0.5, support 2 (scaled when downscaling)
};

// Image.resize((width, height), filter) for an L or RGB image.
RawImage pil_resize(const RawImage& image, int64_t width, int64_t height, ResampleFilter filter);

// guided-diffusion's center_crop_arr(pil_image, size): the result is size x size.
RawImage adm_center_crop(const RawImage& image, int64_t size);

// Places the image in the middle of a size x size canvas filled with `fill` (floor
// offsets), cropping centrally where it is larger: the mini benchmark's 28 -> 32 padding.
RawImage pad_center(const RawImage& image, int64_t size, uint8_t fill = 0);

// How prepared images are fitted to the target resolution; the name is stored in the
// `crop` attribute of the prepared file.
enum class FitMode { AdmCenter, PadCenter };
FitMode parse_fit_mode(const std::string& name);  // "adm-center" | "pad-center"
std::string fit_mode_name(FitMode mode);
RawImage fit_image(const RawImage& image, int64_t size, FitMode mode);

}  // namespace difffit
