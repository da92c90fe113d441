// Image files in and out: PNG and JPEG decoding (libpng, libjpeg-turbo) into 8-bit
// pixels, PNG/JPEG encoding, and Pillow-compatible channel conversion. Decoding
// follows what Pillow does for the same file so that prepared datasets match the
// reference pipeline (PIL.Image.open(f).convert("RGB")).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace difffit {

// 8-bit pixels, rows top to bottom, channels interleaved (HWC).
struct RawImage {
  int64_t width = 0;
  int64_t height = 0;
  int64_t channels = 0;         // 1 (gray) or 3 (RGB); 4 only for encoding
  std::vector<uint8_t> pixels;  // height * width * channels bytes

  RawImage() = default;
  RawImage(int64_t w, int64_t h, int64_t c) : width(w), height(h), channels(c), pixels(size_t(w * h * c)) {}
  uint8_t* row(int64_t y) { return pixels.data() + y * width * channels; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * channels; }
};

// Pillow's decompression-bomb rule: it refuses (DecompressionBombError) an image of more
// than twice Image.MAX_IMAGE_PIXELS (89,478,485) pixels, so difffit decodes what Pillow
// decodes. Checked on the header's width and height, before any pixel is allocated.
constexpr int64_t kMaxImagePixels = 2 * int64_t{89478485};  // 178,956,970

enum class ImageFormat { Unknown, Png, Jpeg };

// From the first bytes (signature), never from the file name.
ImageFormat sniff_image_format(const std::string& bytes);

// Decodes PNG or JPEG bytes to 1 (gray) or 3 (RGB) channels: palettes are expanded,
// alpha is dropped (as Pillow's convert("RGB") does), 16-bit samples keep their high
// byte. Throws a Data error whose message is the reason: "unsupported format ...",
// "truncated ...", "corrupt ...", "... pixels, over the limit ..." (kMaxImagePixels);
// `name` is used in messages only.
RawImage decode_image(const std::string& bytes, const std::string& name);
RawImage read_image_file(const std::string& path);

// Pillow's conversions: L -> RGB replicates, RGB -> L uses its fixed-point ITU-R 601-2 luma.
RawImage convert_channels(const RawImage& image, int64_t channels);

at::Tensor image_to_tensor(const RawImage& image);     // uint8 (H, W, C), a copy
RawImage image_from_tensor(const at::Tensor& hwc_uint8);  // checks dtype and shape

// hwc_uint8: uint8 (H, W, C) with C in {1, 3, 4}; written atomically (PATH.tmp, rename).
void write_png(const std::string& path, const at::Tensor& hwc_uint8);
void write_png(const std::string& path, const RawImage& image);
// Baseline JPEG (C in {1, 3}), 4:2:0 subsampling for RGB; used by tests and tools.
void write_jpeg(const std::string& path, const RawImage& image, int quality = 90);

}  // namespace difffit
