// Image sets on disk (prepared datasets, generated samples): HDF5 with `images`
// uint8 (N, H, W, C), C = 1 or 3, and optional `labels` int64 (N) (`y` in sample files:
// the class each sample was drawn for). Read in row
// batches so large sets never sit in memory whole; or images already in memory (a run's
// samples before or without their file).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace difffit {

class Hdf5Reader;

class ImageSet {
 public:
  explicit ImageSet(const std::string& path);  // checks the layout; throws Data naming the file
  // uint8 (N, H, W, C) images [+ int64 (N) labels] in memory, called `name` in messages.
  // They may be a window: rows [first, first + images.size(0)) of a set of `total` (a rank's
  // share of a data-parallel run's samples); labels, when given, are all `total` of them.
  ImageSet(const std::string& name, const at::Tensor& images, const at::Tensor& labels = at::Tensor(),
           int64_t first = 0, int64_t total = -1);
  ~ImageSet();

  int64_t size() const { return n_; }
  int64_t height() const { return h_; }
  int64_t width() const { return w_; }
  int64_t channels() const { return c_; }
  bool has_labels() const;
  const std::string& path() const { return path_; }

  at::Tensor images(int64_t start, int64_t count) const;  // uint8 (count, H, W, C); within the window
  at::Tensor labels() const;                              // int64 (N); throws if absent
  // The root attribute `content_hash` if present, else a hash of shape and pixels (hex).
  std::string content_hash() const;

 private:
  std::string path_;
  std::unique_ptr<Hdf5Reader> reader_;  // null for images in memory
  at::Tensor images_, labels_;          // the images in memory
  int64_t first_ = 0;                   // the set's row that images_ starts at
  std::string labels_key_;  // "labels", "y" or "" (none)
  int64_t n_ = 0, h_ = 0, w_ = 0, c_ = 0;
};

}  // namespace difffit
