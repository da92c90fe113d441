#include "eval/sample_grid.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <vector>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/image_io.h"
#include "eval/image_set.h"
#include "eval/text_render.h"

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

at::Tensor make_labelled_grid(const at::Tensor& images, const at::Tensor& labels, const GridStyle& style) {
  if (style.scale < 1) throw_usage("sample grid: scale must be >= 1");
  const at::Tensor big =
      style.scale == 1 ? images : images.repeat_interleave(style.scale, 1).repeat_interleave(style.scale, 2);
  const int64_t padding = 2 * style.scale;
  at::Tensor grid = make_sample_grid(big, labels, style.columns, padding);
  if (!style.label_rows || !labels.defined() || labels.numel() == 0) return grid;

  // The rows are the classes present, in class order (as make_sample_grid lays them out).
  const at::Tensor classes = std::get<0>(at::_unique(labels.to(at::kCPU, at::kLong), /*sorted=*/true));
  const int64_t tile = big.size(1), channels = grid.size(2);
  const int64_t text_height = std::clamp<int64_t>(tile / 4, 12, 24);
  std::vector<at::Tensor> texts;
  int64_t margin = 0;
  for (int64_t r = 0; r < classes.size(0); ++r) {
    const int64_t k = classes[r].item<int64_t>();
    const std::string name = k >= 0 && k < static_cast<int64_t>(style.class_names.size())
                                 ? style.class_names[k]
                                 : "class " + std::to_string(k);
    texts.push_back(render_text(name, text_height));
    if (!texts.back().defined()) return grid;  // no font installed: the grid without names
    margin = std::max(margin, texts.back().size(1) + 2 * padding);
  }
  at::Tensor out = at::zeros({grid.size(0), margin + grid.size(1), channels}, at::kByte);
  out.narrow(1, margin, grid.size(1)).copy_(grid);
  for (size_t r = 0; r < texts.size(); ++r) {
    const at::Tensor& t = texts[r];
    const int64_t y0 = padding + static_cast<int64_t>(r) * (tile + padding) + std::max<int64_t>(0, (tile - t.size(0)) / 2);
    const int64_t h = std::min(t.size(0), out.size(0) - y0);
    if (h <= 0) continue;
    out.narrow(0, y0, h).narrow(1, padding, t.size(1)).copy_(t.narrow(0, 0, h).unsqueeze(2).expand({h, t.size(1), channels}));
  }
  return out;
}

std::vector<std::string> class_names_in(const std::string& path) {
  Hdf5Reader file(path);
  return file.has("class_names") ? file.read_strings("class_names") : std::vector<std::string>{};
}

int64_t readable_grid_scale(int64_t side) { return std::max<int64_t>(1, (96 + side - 1) / std::max<int64_t>(side, 1)); }

void write_sample_grid(const std::string& path, const at::Tensor& images, const at::Tensor& labels,
                       const GridStyle& style) {
  write_png(path, make_labelled_grid(images, labels, style));
}

void write_image_set_grid(const std::string& path, const ImageSet& set, const GridStyle& style) {
  const int64_t columns = style.columns;
  if (!set.has_labels()) {
    write_sample_grid(path, set.images(0, std::min(set.size(), columns * columns)), at::Tensor(), style);
    return;
  }
  // The first `columns` of each class, read in batches so a large file is never loaded whole.
  const at::Tensor labels = set.labels();
  const int64_t* l = labels.data_ptr<int64_t>();
  std::map<int64_t, int64_t> shown;
  std::vector<int64_t> chosen;
  for (int64_t i = 0; i < set.size(); ++i)
    if (shown[l[i]]++ < columns) chosen.push_back(i);
  std::vector<at::Tensor> images;
  constexpr int64_t kBatch = 1024;
  size_t next = 0;
  for (int64_t s = 0; s < set.size() && next < chosen.size(); s += kBatch) {
    const int64_t k = std::min(kBatch, set.size() - s);
    if (chosen[next] >= s + k) continue;  // nothing wanted in this batch
    const at::Tensor batch = set.images(s, k);
    for (; next < chosen.size() && chosen[next] < s + k; ++next) images.push_back(batch[chosen[next] - s]);
  }
  write_sample_grid(path, at::stack(images),
                    labels.index_select(0, at::tensor(chosen, at::TensorOptions().dtype(at::kLong))), style);
}

}  // namespace difffit
