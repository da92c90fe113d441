// Sample grids as PNG: one row per class (first `columns` images of each class),
// or a plain row-major grid when there are no labels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace difffit {

// images uint8 (N, H, W, C); labels int64 (N) or undefined. Tiles are separated
// by `padding` pixels of value `pad_value`. Returns uint8 (H', W', C).
at::Tensor make_sample_grid(const at::Tensor& images, const at::Tensor& labels, int64_t columns,
                            int64_t padding = 2, uint8_t pad_value = 0);
// make_sample_grid written with write_png (atomic).
void write_sample_grid(const std::string& path, const at::Tensor& images, const at::Tensor& labels,
                       int64_t columns);

}  // namespace difffit
