// Sample grids as PNG: one row per class (first `columns` images of each class),
// or a plain row-major grid when there are no labels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace difffit {

class ImageSet;

// images uint8 (N, H, W, C); labels int64 (N) or undefined. Tiles are separated
// by `padding` pixels of value `pad_value`. Returns uint8 (H', W', C).
at::Tensor make_sample_grid(const at::Tensor& images, const at::Tensor& labels, int64_t columns,
                            int64_t padding = 2, uint8_t pad_value = 0);
// More images per row than a PNG viewer shows is a typo, not a request.
constexpr int64_t kMaxGridColumns = 1000;

// How a grid is drawn for people: enlarged, with each row named by its class.
struct GridStyle {
  int64_t columns = 10;                  // images per row
  int64_t scale = 1;                     // each pixel drawn as scale x scale (nearest neighbour)
  std::vector<std::string> class_names;  // row labels by class id ("class K" beyond the list)
  bool label_rows = false;               // a margin on the left with each row's class name
};

// make_sample_grid, enlarged by style.scale, with the row labels on the left when
// style.label_rows and the images are labelled.
at::Tensor make_labelled_grid(const at::Tensor& images, const at::Tensor& labels, const GridStyle& style);

// The `class_names` of a prepared (or sample) HDF5 file, or none when it has none.
std::vector<std::string> class_names_in(const std::string& path);

// The scale that shows tiles of `side` pixels at about 96 pixels or more.
int64_t readable_grid_scale(int64_t side);

// make_labelled_grid written with write_png (atomic).
void write_sample_grid(const std::string& path, const at::Tensor& images, const at::Tensor& labels,
                       const GridStyle& style);

// The grid of an image file: the first style.columns images of each class (labelled
// sets) or columns x columns images, read in batches.
void write_image_set_grid(const std::string& path, const ImageSet& set, const GridStyle& style);

}  // namespace difffit
