// The IDX format of (Fashion-)MNIST, gzip-compressed as Debian ships it:
// /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace difffit {

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major
  const uint8_t* image(int64_t i) const { return pixels.data() + i * rows * cols; }
};

// Both read plain or gzip-compressed files; throw Data errors on a bad magic number,
// a truncated file, or a count that does not match the header.
IdxImages read_idx_images(const std::string& path);
std::vector<int64_t> read_idx_labels(const std::string& path);

// "train" -> train-*, "test" -> t10k-* under `folder`.
struct FashionMnistSplit {
  IdxImages images;
  std::vector<int64_t> labels;
};
FashionMnistSplit read_fashion_mnist(const std::string& folder, const std::string& split);

const std::vector<std::string>& fashion_mnist_class_names();
constexpr const char* kDefaultFashionMnistFolder = "/usr/share/datasets/fashion-mnist";  // Debian's package
// $DIFFFIT_FASHION_MNIST when set (the files elsewhere: the GPU bundle carries the test
// split), else Debian's folder.
std::string default_fashion_mnist_folder();
// Whether that folder holds `split` ("train" or "test"), compressed or not.
bool fashion_mnist_available(const std::string& split);

}  // namespace difffit
