#include "eval/image_set.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/input_file.h"
#include "common/hdf5_tensors.h"
#include "common/sha256.h"
#include "eval/content_hash.h"

namespace difffit {
ImageSet::ImageSet(const std::string& path) : path_(path), reader_(std::make_unique<Hdf5Reader>(path)) {
  if (!reader_->has("images")) throw_data(path + ": missing dataset 'images' (uint8 N,H,W,C)");
  const std::vector<int64_t> shape = reader_->shape("images");
  if (shape.size() != 4 || (shape[3] != 1 && shape[3] != 3))
    throw_data(path + ": dataset 'images' must be (N, H, W, C) with C = 1 or 3, got rank " +
               std::to_string(shape.size()) + (shape.size() == 4 ? " and C = " + std::to_string(shape[3]) : ""));
  n_ = shape[0], h_ = shape[1], w_ = shape[2], c_ = shape[3];
  if (h_ < 1 || w_ < 1) throw_data(path + ": dataset 'images' holds empty images (" + std::to_string(h_) + " x " +
                                   std::to_string(w_) + ")");
  labels_key_ = reader_->has("labels") ? "labels" : reader_->has("y") ? "y" : "";
  if (has_labels() && (reader_->shape(labels_key_).size() != 1 || reader_->shape(labels_key_)[0] != n_))
    throw_data(path + ": dataset '" + labels_key_ + "' must be (N) with N = " + std::to_string(n_));
}

ImageSet::ImageSet(const std::string& name, const at::Tensor& images, const at::Tensor& labels, int64_t first,
                   int64_t total)
    : path_(name), first_(first) {
  if (images.dim() != 4 || images.scalar_type() != at::kByte || (images.size(3) != 1 && images.size(3) != 3))
    throw_usage(name + ": images in memory must be uint8 (N, H, W, C) with C = 1 or 3");
  images_ = images.cpu().contiguous();
  n_ = total < 0 ? first + images.size(0) : total, h_ = images.size(1), w_ = images.size(2), c_ = images.size(3);
  if (h_ < 1 || w_ < 1) throw_data(name + ": empty images (" + std::to_string(h_) + " x " + std::to_string(w_) + ")");
  if (first < 0 || first + images.size(0) > n_)
    throw_usage(name + ": rows [" + std::to_string(first) + ", " + std::to_string(first + images.size(0)) +
                ") are not within a set of " + std::to_string(n_));
  if (labels.defined() && labels.numel() > 0) {
    if (labels.dim() != 1 || labels.size(0) != n_)
      throw_usage(name + ": labels in memory must be (N) with N = " + std::to_string(n_));
    labels_ = labels.cpu().to(at::kLong).contiguous();
    labels_key_ = "labels";
  }
}

ImageSet::~ImageSet() = default;

bool ImageSet::has_labels() const { return !labels_key_.empty(); }

at::Tensor ImageSet::images(int64_t start, int64_t count) const {
  if (!reader_) {
    if (start < first_ || start + count > first_ + images_.size(0))
      throw_usage(path_ + ": rows [" + std::to_string(start) + ", " + std::to_string(start + count) +
                  ") are outside the rows held here [" + std::to_string(first_) + ", " +
                  std::to_string(first_ + images_.size(0)) + ")");
    return images_.narrow(0, start - first_, count);
  }
  return reader_->read_rows("images", at::kByte, start, count);
}

at::Tensor ImageSet::labels() const {
  if (!has_labels()) throw_data(path_ + ": no 'labels' (or 'y') dataset");
  if (!reader_) return labels_;
  return reader_->read(labels_key_, at::kLong, 1);
}

std::string ImageSet::content_hash() const {
  if (reader_ && reader_->has_attribute("content_hash")) return reader_->read_string_attribute("content_hash");
  // The same digest `difffit prepare` stores: SHA-256 over the image bytes, then the labels (int64 LE).
  Sha256 sha;
  const int64_t batch = std::max<int64_t>(1, (int64_t{64} << 20) / std::max<int64_t>(1, h_ * w_ * c_));
  for (int64_t s = 0; s < n_; s += batch) {
    const at::Tensor chunk = images(s, std::min(batch, n_ - s)).contiguous();
    sha.update(chunk.data_ptr<uint8_t>(), static_cast<size_t>(chunk.numel()));
  }
  if (has_labels()) {
    const at::Tensor l = labels().contiguous();
    sha.update(l.data_ptr<int64_t>(), static_cast<size_t>(l.numel()) * sizeof(int64_t));
  }
  return sha.hex_digest();
}

}  // namespace difffit
