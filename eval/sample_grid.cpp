#include "eval/sample_grid.h"

#include <ATen/ATen.h>

#include <map>
#include <vector>

#include "common/error.h"
#include "common/image_io.h"

namespace difffit {

at::Tensor make_sample_grid(const at::Tensor& images, const at::Tensor& labels, int64_t columns, int64_t padding,
                            uint8_t pad_value) {
  if (images.dim() != 4 || images.scalar_type() != at::kByte)
    throw_data("sample grid: images must be uint8 (N, H, W, C), got " + c10::str(images.sizes()));
  if (columns < 1) throw_usage("sample grid: columns must be >= 1");
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2), c = images.size(3);
  if (n == 0) throw_data("sample grid: no images");

  // rows[r] = image indices shown in row r.
  std::vector<std::vector<int64_t>> rows;
  if (labels.defined() && labels.numel() > 0) {
    if (labels.dim() != 1 || labels.size(0) != n) throw_data("sample grid: need one label per image");
    const at::Tensor l = labels.to(at::kCPU, at::kLong).contiguous();
    std::map<int64_t, std::vector<int64_t>> by_class;  // ordered by class id
    for (int64_t i = 0; i < n; ++i) {
      auto& row = by_class[l.data_ptr<int64_t>()[i]];
      if (static_cast<int64_t>(row.size()) < columns) row.push_back(i);
    }
    for (auto& kv : by_class) rows.push_back(std::move(kv.second));
  } else {
    for (int64_t s = 0; s < n; s += columns) {
      rows.emplace_back();
      for (int64_t i = s; i < std::min(n, s + columns); ++i) rows.back().push_back(i);
    }
  }
  const int64_t nrows = static_cast<int64_t>(rows.size());
  at::Tensor grid = at::full({padding + nrows * (h + padding), padding + columns * (w + padding), c}, pad_value,
                             at::TensorOptions().dtype(at::kByte));
  const at::Tensor src = images.to(at::kCPU);
  for (int64_t r = 0; r < nrows; ++r) {
    for (size_t k = 0; k < rows[r].size(); ++k) {
      const int64_t y0 = padding + r * (h + padding), x0 = padding + static_cast<int64_t>(k) * (w + padding);
      grid.narrow(0, y0, h).narrow(1, x0, w).copy_(src[rows[r][k]]);
    }
  }
  return grid;
}

void write_sample_grid(const std::string& path, const at::Tensor& images, const at::Tensor& labels, int64_t columns) {
  write_png(path, make_sample_grid(images, labels, columns));
}

}  // namespace difffit
