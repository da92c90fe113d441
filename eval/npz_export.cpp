#include "eval/npz_export.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "common/zip_archive.h"
#include "eval/feature_stats.h"
#include "eval/image_set.h"

namespace difffit {
namespace {

const char* npy_descr(at::ScalarType t) {
  switch (t) {
    case at::kByte: return "|u1";
    case at::kLong: return "<i8";
    case at::kFloat: return "<f4";
    case at::kDouble: return "<f8";
    default: return nullptr;
  }
}

// Header of an .npy file, format 1.0: magic, version, little-endian header length,
// then a Python dict literal padded with spaces and '\n' to a multiple of 64 bytes.
std::string npy_header(const at::Tensor& t) {
  std::string shape = "(";
  for (int64_t d = 0; d < t.dim(); ++d) shape += std::to_string(t.size(d)) + (t.dim() == 1 ? ",)" : d + 1 < t.dim() ? ", " : ")");
  if (t.dim() == 0) shape += ")";
  std::string dict = std::string("{'descr': '") + npy_descr(t.scalar_type()) + "', 'fortran_order': False, 'shape': " +
                     shape + ", }";
  const size_t unpadded = 10 + dict.size() + 1;
  dict += std::string((64 - unpadded % 64) % 64, ' ') + "\n";
  std::string header("\x93NUMPY\x01\x00", 8);
  header += static_cast<char>(dict.size() & 0xFF);
  header += static_cast<char>((dict.size() >> 8) & 0xFF);
  return header + dict;
}

}  // namespace

void write_npz(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& arrays) {
  write_zip_atomically(path, [&](ZipWriter& zip) {
    for (const auto& [name, tensor] : arrays) {
      if (!tensor.defined() || npy_descr(tensor.scalar_type()) == nullptr)
        throw_data(path + ": array '" + name + "' is undefined or of an unsupported dtype");
      const at::Tensor t = tensor.to(at::kCPU).contiguous();
      std::string bytes = npy_header(t);
      const size_t header_size = bytes.size();
      bytes.resize(header_size + static_cast<size_t>(t.numel()) * t.element_size());
      if (t.numel() > 0) std::memcpy(&bytes[header_size], t.data_ptr(), bytes.size() - header_size);
      zip.add(name + ".npy", bytes.data(), bytes.size());
    }
  });
}

void export_samples_npz(const std::string& image_set, const std::string& npz_path, int64_t max_images) {
  ImageSet images(image_set);
  const int64_t n = max_images > 0 ? std::min(max_images, images.size()) : images.size();
  at::Tensor arr = images.images(0, n);
  if (arr.size(3) == 1) arr = arr.expand({-1, -1, -1, 3}).contiguous();
  write_npz(npz_path, {{"arr_0", arr}});
}

void export_stats_npz(const FeatureStats& stats, const std::string& npz_path) {
  write_npz(npz_path, {{"mu", stats.mean()}, {"sigma", stats.covariance()}});
}

}  // namespace difffit
