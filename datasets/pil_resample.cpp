#include "datasets/pil_resample.h"

#include <cmath>
#include <vector>

#include "common/error.h"

namespace difffit {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's fixed point for 8-bit images

double box_kernel(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Per output pixel: the first input index and the quantised weights of its window.
struct Coefficients {
  int64_t window = 0;              // weights per output pixel (the widest window)
  std::vector<int64_t> first;      // first input index per output pixel
  std::vector<int64_t> count;      // used weights per output pixel
  std::vector<int32_t> weights;    // out_size * window, fixed point
};

// Mirrors Pillow's precompute_coeffs + normalize_coeffs_8bpc for the full-image box.
Coefficients make_coefficients(int64_t in_size, int64_t out_size, ResampleFilter filter) {
  const double support_base = filter == ResampleFilter::Box ? 0.5 : 2.0;
  const double scale = static_cast<double>(static_cast<float>(in_size)) / static_cast<double>(out_size);
  const double filter_scale = scale < 1.0 ? 1.0 : scale;
  const double support = support_base * filter_scale;
  Coefficients c;
  c.window = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size * c.window), 0);
  std::vector<double> w(static_cast<size_t>(c.window));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double inv = 1.0 / filter_scale;
    // Truncation toward zero after adding 0.5, as Pillow's (int) casts.
    int64_t xmin = static_cast<int64_t>(static_cast<int>(center - support + 0.5));
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(static_cast<int>(center + support + 0.5));
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      const double arg = (x + xmin - center + 0.5) * inv;
      w[x] = filter == ResampleFilter::Box ? box_kernel(arg) : bicubic_kernel(arg);
      total += w[x];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      const double v = total != 0.0 ? w[x] / total : w[x];
      c.weights[xx * c.window + x] =
          v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits)) : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift: floor, as Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over input rows [row0, row0 + rows).
RawImage resample_horizontal(const RawImage& in, int64_t out_width, int64_t row0, int64_t rows,
                             const Coefficients& c) {
  const int64_t ch = in.channels;
  RawImage out(out_width, rows, ch);
  for (int64_t y = 0; y < rows; ++y) {
    const uint8_t* src = in.row(row0 + y);
    uint8_t* dst = out.row(y);
    for (int64_t xx = 0; xx < out_width; ++xx) {
      const int32_t* k = &c.weights[xx * c.window];
      const uint8_t* s = src + c.first[xx] * ch;
      for (int64_t b = 0; b < ch; ++b) {
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (int64_t x = 0; x < c.count[xx]; ++x) acc += s[x * ch + b] * k[x];
        dst[xx * ch + b] = clip8(acc);
      }
    }
  }
  return out;
}

// Vertical pass; `first` indices are relative to the rows kept by the horizontal pass.
RawImage resample_vertical(const RawImage& in, int64_t out_height, int64_t row_shift, const Coefficients& c) {
  const int64_t ch = in.channels, row_len = in.width * ch;
  RawImage out(in.width, out_height, ch);
  for (int64_t yy = 0; yy < out_height; ++yy) {
    const int32_t* k = &c.weights[yy * c.window];
    const int64_t y0 = c.first[yy] - row_shift;
    uint8_t* dst = out.row(yy);
    for (int64_t i = 0; i < row_len; ++i) {
      int32_t acc = 1 << (kPrecisionBits - 1);
      for (int64_t y = 0; y < c.count[yy]; ++y) acc += in.pixels[(y0 + y) * row_len + i] * k[y];
      dst[i] = clip8(acc);
    }
  }
  return out;
}

}  // namespace

RawImage pil_resize(const RawImage& image, int64_t width, int64_t height, ResampleFilter filter) {
  if (width <= 0 || height <= 0) throw_data("resize: target size must be positive");
  if (image.width <= 0 || image.height <= 0) throw_data("resize: empty image");
  if (width == image.width && height == image.height) return image;  // Pillow returns a copy
  const bool horizontal = width != image.width, vertical = height != image.height;
  Coefficients ch = make_coefficients(image.width, width, filter);
  Coefficients cv = make_coefficients(image.height, height, filter);
  // Only the rows the vertical pass reads go through the horizontal pass.
  const int64_t first_row = cv.first[0];
  const int64_t last_row = cv.first[height - 1] + cv.count[height - 1];
  RawImage current;
  int64_t shift = 0;
  if (horizontal) {
    current = resample_horizontal(image, width, first_row, last_row - first_row, ch);
    shift = first_row;
  } else {
    current = image;
  }
  if (vertical) current = resample_vertical(current, height, shift, cv);
  return current;
}

RawImage adm_center_crop(const RawImage& image, int64_t size) {
  if (size <= 0) throw_data("center crop: size must be positive");
  RawImage current = image;
  while (std::min(current.width, current.height) >= 2 * size) {
    current = pil_resize(current, current.width / 2, current.height / 2, ResampleFilter::Box);
  }
  const double scale = static_cast<double>(size) / static_cast<double>(std::min(current.width, current.height));
  // Python's round(): half to even, which nearbyint does in the default rounding mode.
  const int64_t w = static_cast<int64_t>(std::nearbyint(current.width * scale));
  const int64_t h = static_cast<int64_t>(std::nearbyint(current.height * scale));
  current = pil_resize(current, w, h, ResampleFilter::Bicubic);
  const int64_t top = (current.height - size) / 2, left = (current.width - size) / 2;
  RawImage out(size, size, current.channels);
  const int64_t row_bytes = size * current.channels;
  for (int64_t y = 0; y < size; ++y) {
    std::copy_n(current.row(top + y) + left * current.channels, row_bytes, out.row(y));
  }
  return out;
}

RawImage pad_center(const RawImage& image, int64_t size, uint8_t fill) {
  RawImage out(size, size, image.channels);
  std::fill(out.pixels.begin(), out.pixels.end(), fill);
  // Offsets into the canvas (positive) or into the image (negative -> crop).
  const int64_t dy = (size - image.height) / 2, dx = (size - image.width) / 2;
  const int64_t x0 = std::max<int64_t>(0, dx), x1 = std::min<int64_t>(size, dx + image.width);
  if (x1 <= x0) return out;
  for (int64_t y = std::max<int64_t>(0, dy); y < std::min<int64_t>(size, dy + image.height); ++y) {
    std::copy_n(image.row(y - dy) + (x0 - dx) * image.channels, (x1 - x0) * image.channels,
                out.row(y) + x0 * image.channels);
  }
  return out;
}

FitMode parse_fit_mode(const std::string& name) {
  if (name == "adm-center") return FitMode::AdmCenter;
  if (name == "pad-center") return FitMode::PadCenter;
  throw_usage("unknown fit mode '" + name + "' (adm-center | pad-center)");
}

std::string fit_mode_name(FitMode mode) { return mode == FitMode::AdmCenter ? "adm-center" : "pad-center"; }

RawImage fit_image(const RawImage& image, int64_t size, FitMode mode) {
  return mode == FitMode::AdmCenter ? adm_center_crop(image, size) : pad_center(image, size);
}

}  // namespace difffit
