#include "datasets/mini_benchmark.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/logging.h"
#include "datasets/idx_reader.h"
#include "datasets/pil_resample.h"
#include "datasets/prepared_writer.h"

namespace difffit {
namespace {

// ---- the shifts: integer arithmetic only, so every machine builds identical bytes ----

void invert(RawImage& im, uint64_t) {
  for (auto& v : im.pixels) v = static_cast<uint8_t>(255 - v);
}

void rotate90_clockwise(RawImage& im, uint64_t) {
  RawImage out(im.height, im.width, 1);
  for (int64_t y = 0; y < out.height; ++y) {
    for (int64_t x = 0; x < out.width; ++x) out.row(y)[x] = im.row(im.height - 1 - x)[y];
  }
  im = std::move(out);
}

void flip_vertical(RawImage& im, uint64_t) {
  for (int64_t y = 0; y < im.height / 2; ++y) std::swap_ranges(im.row(y), im.row(y) + im.width, im.row(im.height - 1 - y));
}

// Sobel gradient magnitude / 4, rounded and clipped; zero outside the image.
void sobel_edges(RawImage& im, uint64_t) {
  auto at = [&](int64_t y, int64_t x) -> int {
    return (y < 0 || x < 0 || y >= im.height || x >= im.width) ? 0 : im.row(y)[x];
  };
  RawImage out(im.width, im.height, 1);
  for (int64_t y = 0; y < im.height; ++y) {
    for (int64_t x = 0; x < im.width; ++x) {
      const int gx = (at(y - 1, x + 1) + 2 * at(y, x + 1) + at(y + 1, x + 1)) -
                     (at(y - 1, x - 1) + 2 * at(y, x - 1) + at(y + 1, x - 1));
      const int gy = (at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1)) -
                     (at(y - 1, x - 1) + 2 * at(y - 1, x) + at(y - 1, x + 1));
      // Integer square root of (gx^2 + gy^2) / 16, rounded down: exact everywhere.
      const int64_t target = (int64_t(gx) * gx + int64_t(gy) * gy) / 16;
      int64_t r = static_cast<int64_t>(std::sqrt(static_cast<double>(target)));
      while (r * r > target) --r;
      while ((r + 1) * (r + 1) <= target) ++r;
      out.row(y)[x] = static_cast<uint8_t>(std::min<int64_t>(r, 255));
    }
  }
  im = std::move(out);
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Contrast halved around 128, 3x3 box blur (edges clamped), then approximately Gaussian
// noise with sigma 10 (sum of 12 uniforms), seeded by the image key.
void degrade(RawImage& im, uint64_t key) {
  for (auto& v : im.pixels) v = static_cast<uint8_t>((v + 128) / 2);
  RawImage blurred(im.width, im.height, 1);
  for (int64_t y = 0; y < im.height; ++y) {
    for (int64_t x = 0; x < im.width; ++x) {
      int sum = 0;
      for (int64_t dy = -1; dy <= 1; ++dy) {
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = std::clamp<int64_t>(y + dy, 0, im.height - 1), xx = std::clamp<int64_t>(x + dx, 0, im.width - 1);
          sum += im.row(yy)[xx];
        }
      }
      blurred.row(y)[x] = static_cast<uint8_t>((sum + 4) / 9);
    }
  }
  uint64_t state = key * 0x2545f4914f6cdd1dull + 0x5eed;
  for (auto& v : blurred.pixels) {
    int64_t sum = 0;
    for (int i = 0; i < 3; ++i) {  // 12 x U{0..65535}: four 16-bit draws per 64-bit number
      const uint64_t r = splitmix64(state);
      sum += static_cast<int64_t>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    }
    // (sum - mean) has std 65536; scale to sigma 10 and round half away from zero.
    const int64_t scaled = (sum - 6 * 65535) * 10;  // the mean of 12 x U{0..65535} is 6 * 65535
    const int64_t noise = scaled >= 0 ? (scaled + 32768) / 65536 : -((-scaled + 32768) / 65536);
    v = static_cast<uint8_t>(std::clamp<int64_t>(v + noise, 0, 255));
  }
  im = std::move(blurred);
}

void identity(RawImage&, uint64_t) {}

std::vector<int> range(int first, int last) {
  std::vector<int> out;
  for (int c = first; c <= last; ++c) out.push_back(c);
  return out;
}

std::string relative(const std::string& task, const std::string& file) { return task + "/" + file; }

struct SplitData {
  const FashionMnistSplit* data;
  const char* split;     // "train" | "ref"
  const char* origin;    // "train" | "test" (Fashion-MNIST file)
  uint64_t key_base;     // noise keys are key_base + image index
  bool is_train;         // train_per_class caps apply
};

PrepareSummary write_split(const MiniTaskSpec& spec, const SplitData& split, const std::string& path,
                           int64_t resolution) {
  PreparedMeta meta;
  meta.source = "mini:" + spec.name;
  meta.input = std::string("fashion-mnist ") + split.origin;
  meta.split = split.split;
  meta.crop = "pad-center";
  meta.description = spec.description;
  meta.resolution = resolution * spec.scale;
  meta.channels = 1;
  std::vector<int> task_label(10, -1);
  for (size_t i = 0; i < spec.classes.size(); ++i) {
    task_label[spec.classes[i]] = static_cast<int>(i);
    meta.class_names.push_back(fashion_mnist_class_names()[spec.classes[i]]);
  }
  const bool capped = split.is_train && spec.train_per_class > 0;
  std::vector<int64_t> taken(10, 0);
  PreparedWriter writer(path, meta);
  const IdxImages& images = split.data->images;
  for (int64_t i = 0; i < images.count; ++i) {
    const int64_t original = split.data->labels[i];
    const int label = task_label[original];
    if (label < 0) continue;
    if (capped && taken[original] >= spec.train_per_class) continue;
    ++taken[original];
    RawImage image(images.cols, images.rows, 1);
    std::copy_n(images.image(i), image.pixels.size(), image.pixels.data());
    image = pad_center(image, resolution);
    spec.shift(image, split.key_base + static_cast<uint64_t>(i));
    if (spec.scale != 1) image = pil_resize(image, resolution * spec.scale, resolution * spec.scale, ResampleFilter::Bicubic);
    writer.add(image, label, std::string("fashion-mnist/") + split.origin + "[" + std::to_string(i) + "]");
  }
  return writer.finish();
}

}  // namespace

// Ten-class tasks keep the first 3000 training images per class (30,000, as many as
// the five-class tasks): plenty for 400-600 fine-tuning steps, and half the build time.
constexpr int64_t kTenClassCap = 3000;

const std::vector<MiniTaskSpec>& mini_task_specs() {
  static const std::vector<MiniTaskSpec> specs = {
      {"source", "pre-training source: Fashion-MNIST classes 0-4 (T-shirt/top, Trouser, Pullover, Dress, Coat), unchanged",
       range(0, 4), 0, identity},
      {"new-classes", "unseen classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) relabelled 0-4, unchanged pixels",
       range(5, 9), 0, identity},
      {"inverted", "all 10 classes (3000 train images each), intensities inverted (255 - v): dark garments on a white background",
       range(0, 9), kTenClassCap, invert},
      {"rotated", "all 10 classes (3000 train images each), rotated 90 degrees clockwise", range(0, 9), kTenClassCap, rotate90_clockwise},
      {"edges", "all 10 classes (3000 train images each) as edge maps: Sobel gradient magnitude / 4, clipped to 255", range(0, 9),
       kTenClassCap, sobel_edges},
      {"low-data", "all 10 classes but only the first 50 training images per class (500 images); unchanged pixels",
       range(0, 9), 50, identity},
      {"flipped", "all 10 classes (3000 train images each), flipped upside down (vertical flip)", range(0, 9), kTenClassCap, flip_vertical},
      {"degraded", "all 10 classes (3000 train images each), contrast halved around 128, 3x3 box blur, Gaussian-like noise sigma 10 (fixed seed)",
       range(0, 9), kTenClassCap, degrade},
      {"mixed", "classes 5-9 relabelled 0-4, inverted and then rotated 90 degrees clockwise (new classes + two shifts)",
       range(5, 9), 0,
       [](RawImage& im, uint64_t key) {
         invert(im, key);
         rotate90_clockwise(im, key);
       }},
      {"source-2x", "the source task at twice the resolution (64x64 at the default 32): each padded image enlarged 2x "
                    "with Pillow's BICUBIC filter; for the resolution transfer",
       range(0, 4), 0, identity, /*scale=*/2, /*transfer=*/true},
  };
  return specs;
}

std::vector<MiniTaskFiles> build_mini_benchmark(const MiniBenchmarkOptions& options) {
  namespace fs = std::filesystem;
  if (options.output_dir.empty()) throw_usage("mini benchmark: --output DIR is required");
  if (options.resolution < 28) throw_usage("mini benchmark: resolution must be at least 28 (images are padded)");
  const auto started = std::chrono::steady_clock::now();
  const FashionMnistSplit train = read_fashion_mnist(options.fashion_mnist_dir, "train");
  const FashionMnistSplit test = read_fashion_mnist(options.fashion_mnist_dir, "test");
  fs::create_directories(options.output_dir);
  std::vector<MiniTaskFiles> out;
  for (const auto& spec : mini_task_specs()) {
    fs::create_directories(fs::path(options.output_dir) / spec.name);
    MiniTaskFiles files;
    files.name = spec.name;
    files.description = spec.description;
    files.num_classes = static_cast<int64_t>(spec.classes.size());
    files.resolution = options.resolution * spec.scale;
    files.transfer = spec.transfer;
    files.train = relative(spec.name, "train.h5");
    files.ref = relative(spec.name, "ref.h5");
    // Noise keys: train images 0.., reference images 1e6.. (never the same stream).
    PrepareSummary tr = write_split(spec, {&train, "train", "train", 0, true}, (fs::path(options.output_dir) / files.train).string(),
                                    options.resolution);
    PrepareSummary rf = write_split(spec, {&test, "ref", "test", 1000000, false}, (fs::path(options.output_dir) / files.ref).string(),
                                    options.resolution);
    files.train_images = tr.images;
    files.ref_images = rf.images;
    files.train_hash = tr.content_hash;
    files.ref_hash = rf.content_hash;
    log()->info("[prepare] mini {}: {} train / {} ref images, {} classes, {} px", spec.name, tr.images, rf.images,
                files.num_classes, files.resolution);
    out.push_back(files);
  }

  YAML::Emitter yaml;
  yaml << YAML::BeginMap;
  yaml << YAML::Key << "benchmark" << YAML::Value << "mini";
  yaml << YAML::Key << "data" << YAML::Value << "Fashion-MNIST (" + options.fashion_mnist_dir + "), 28x28 padded to " +
                                                    std::to_string(options.resolution) + "x" +
                                                    std::to_string(options.resolution) + "x1";
  yaml << YAML::Key << "paths_relative_to" << YAML::Value << "the folder of this file";
  yaml << YAML::Key << "resolution" << YAML::Value << options.resolution;
  yaml << YAML::Key << "channels" << YAML::Value << 1;
  auto emit_task = [&](const MiniTaskFiles& f) {
    yaml << YAML::BeginMap;
    yaml << YAML::Key << "name" << YAML::Value << f.name;
    yaml << YAML::Key << "description" << YAML::Value << f.description;
    yaml << YAML::Key << "num_classes" << YAML::Value << f.num_classes;
    yaml << YAML::Key << "resolution" << YAML::Value << f.resolution;
    yaml << YAML::Key << "train" << YAML::Value << f.train;
    yaml << YAML::Key << "ref" << YAML::Value << f.ref;
    yaml << YAML::Key << "train_images" << YAML::Value << f.train_images;
    yaml << YAML::Key << "ref_images" << YAML::Value << f.ref_images;
    yaml << YAML::Key << "train_hash" << YAML::Value << f.train_hash;
    yaml << YAML::Key << "ref_hash" << YAML::Value << f.ref_hash;
    yaml << YAML::EndMap;
  };
  yaml << YAML::Key << "source" << YAML::Value;
  emit_task(out.front());
  for (bool transfer : {false, true}) {
    yaml << YAML::Key << (transfer ? "transfer" : "tasks") << YAML::Value << YAML::BeginSeq;
    for (size_t i = 1; i < out.size(); ++i)
      if (out[i].transfer == transfer) emit_task(out[i]);
    yaml << YAML::EndSeq;
  }
  yaml << YAML::EndMap;
  const std::string yaml_path = (fs::path(options.output_dir) / "benchmark.yaml").string();
  write_file_atomically(yaml_path, std::string("# The difffit mini benchmark, written by `difffit prepare --benchmark "
                                               "mini`.\n") + yaml.c_str() + "\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  log()->info("[prepare] mini benchmark: {} datasets in {} ({:.1f} s)", out.size(), options.output_dir, seconds);
  return out;
}

}  // namespace difffit
