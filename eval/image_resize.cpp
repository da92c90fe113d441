#include "eval/image_resize.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "common/error.h"

namespace difffit {
namespace {

double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// (out, in) float64 weights, one normalised row per output pixel, as PIL's precompute_coeffs.
at::Tensor resample_matrix(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  at::Tensor w = at::zeros({out_size, in_size}, at::TensorOptions().dtype(at::kDouble));
  auto acc = w.accessor<double, 2>();
  std::vector<double> k;
  for (int64_t o = 0; o < out_size; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    // PIL truncates with a C cast (toward zero), then clamps.
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    k.assign(static_cast<size_t>(std::max<int64_t>(xmax, 0)), 0.0);
    double total = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      k[x] = bicubic((static_cast<double>(x + xmin) - center + 0.5) / filterscale);
      total += k[x];
    }
    for (int64_t x = 0; x < xmax; ++x) acc[o][x + xmin] = total != 0.0 ? k[x] / total : k[x];
  }
  return w;
}

}  // namespace

at::Tensor resize_pil_bicubic(const at::Tensor& x, int64_t out_h, int64_t out_w) {
  if (x.dim() != 4) throw_data("resize: expected (N, C, H, W), got " + c10::str(x.sizes()));
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor img = x.to(at::kFloat).reshape({n * c, h, w});
  // PIL skips a pass whose size does not change.
  if (w != out_w) {
    const at::Tensor wx = resample_matrix(w, out_w);  // (out_w, w)
    img = at::matmul(img.to(at::kDouble), wx.t()).to(at::kFloat);
  }
  if (h != out_h) {
    const at::Tensor wy = resample_matrix(h, out_h);  // (out_h, h)
    img = at::matmul(wy, img.to(at::kDouble)).to(at::kFloat);
  }
  return img.reshape({n, c, out_h, out_w});
}

}  // namespace difffit
