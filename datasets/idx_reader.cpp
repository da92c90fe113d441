#include "datasets/idx_reader.h"

#include <cstdlib>

#include <zlib.h>

#include <filesystem>
#include <memory>

#include "common/error.h"
#include "common/input_file.h"

namespace difffit {
namespace {

// gzread reads plain files transparently as well.
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path), file_(nullptr) {
    check_input_file(path, "an IDX file");
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) throw_io(path + ": cannot open");
  }
  ~GzFile() { gzclose(file_); }
  void read(void* out, size_t size, const char* what) {
    auto* p = static_cast<char*>(out);
    while (size > 0) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size, 1u << 30));
      const int n = gzread(file_, p, chunk);
      if (n <= 0) throw_data(path_ + ": truncated or corrupt while reading " + what);
      p += n;
      size -= static_cast<size_t>(n);
    }
  }
  uint32_t read_u32(const char* what) {
    unsigned char b[4];
    read(b, 4, what);
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  }

 private:
  std::string path_;
  gzFile file_;
};

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  GzFile file(path);
  const uint32_t magic = file.read_u32("the header");
  if (magic != 0x00000803) throw_data(path + ": not an IDX image file (magic " + std::to_string(magic) + ")");
  IdxImages out;
  out.count = file.read_u32("the header");
  out.rows = file.read_u32("the header");
  out.cols = file.read_u32("the header");
  if (out.rows <= 0 || out.cols <= 0 || out.rows > 4096 || out.cols > 4096 || out.count > (1 << 26)) {
    throw_data(path + ": implausible IDX header");
  }
  out.pixels.resize(static_cast<size_t>(out.count * out.rows * out.cols));
  file.read(out.pixels.data(), out.pixels.size(), "the pixels");
  return out;
}

std::vector<int64_t> read_idx_labels(const std::string& path) {
  GzFile file(path);
  const uint32_t magic = file.read_u32("the header");
  if (magic != 0x00000801) throw_data(path + ": not an IDX label file (magic " + std::to_string(magic) + ")");
  const uint32_t count = file.read_u32("the header");
  if (count > (1u << 26)) throw_data(path + ": implausible IDX header");
  std::vector<uint8_t> raw(count);
  file.read(raw.data(), raw.size(), "the labels");
  return std::vector<int64_t>(raw.begin(), raw.end());
}

std::string default_fashion_mnist_folder() {
  const char* folder = std::getenv("DIFFFIT_FASHION_MNIST");
  return folder && *folder ? folder : kDefaultFashionMnistFolder;
}

bool fashion_mnist_available(const std::string& split) {
  const std::filesystem::path images =
      std::filesystem::path(default_fashion_mnist_folder()) / (split == "train" ? "train" : "t10k");
  return std::filesystem::exists(images.string() + "-images-idx3-ubyte.gz") ||
         std::filesystem::exists(images.string() + "-images-idx3-ubyte");
}

FashionMnistSplit read_fashion_mnist(const std::string& folder, const std::string& split) {
  std::string prefix;
  if (split == "train") {
    prefix = "train";
  } else if (split == "test") {
    prefix = "t10k";
  } else {
    throw_usage("fashion-mnist: split must be train or test, got '" + split + "'");
  }
  namespace fs = std::filesystem;
  auto find = [&](const std::string& stem) {
    for (const char* suffix : {".gz", ""}) {
      fs::path p = fs::path(folder) / (prefix + stem + suffix);
      if (fs::exists(p)) return p.string();
    }
    throw_io(folder + ": no " + prefix + stem + "[.gz] (install Debian's dataset-fashion-mnist)");
  };
  FashionMnistSplit out;
  out.images = read_idx_images(find("-images-idx3-ubyte"));
  out.labels = read_idx_labels(find("-labels-idx1-ubyte"));
  if (static_cast<int64_t>(out.labels.size()) != out.images.count) {
    throw_data(folder + ": " + split + " has " + std::to_string(out.images.count) + " images but " +
               std::to_string(out.labels.size()) + " labels");
  }
  for (int64_t label : out.labels) {
    if (label < 0 || label > 9) throw_data(folder + ": label " + std::to_string(label) + " outside 0..9");
  }
  return out;
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace difffit
