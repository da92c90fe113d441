#include "datasets/prepare.h"

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/error.h"
#include "common/logging.h"
#include "datasets/idx_reader.h"
#include "datasets/source_listing.h"

namespace difffit {
namespace {

PrepareSummary prepare_fashion_mnist(const PrepareOptions& options, PreparedMeta meta) {
  const std::string folder = options.input.empty() ? default_fashion_mnist_folder() : options.input;
  FashionMnistSplit data = read_fashion_mnist(folder, options.split);
  meta.input = folder;
  meta.class_names = fashion_mnist_class_names();
  if (options.channels == 0) meta.channels = 1;
  PreparedWriter writer(options.output, meta);
  int64_t n = data.images.count;
  if (options.limit > 0) n = std::min(n, options.limit);
  for (int64_t i = 0; i < n; ++i) {
    RawImage image(data.images.cols, data.images.rows, 1);
    std::copy_n(data.images.image(i), image.pixels.size(), image.pixels.data());
    image = fit_image(convert_channels(image, meta.channels), meta.resolution, options.fit);
    writer.add(image, data.labels[i], options.split + "[" + std::to_string(i) + "]");
  }
  return writer.finish();
}

struct Decoded {
  std::optional<RawImage> image;
  std::string error;
};

Decoded decode_and_fit(const SourceFile& file, const PrepareOptions& options, int64_t channels) {
  Decoded out;
  try {
    RawImage image = read_image_file(file.path);
    out.image = fit_image(convert_channels(image, channels), options.resolution, options.fit);
  } catch (const Error& e) {
    // Messages read "<path>: <reason>"; the report names the file separately.
    std::string message = e.what();
    const std::string prefix = file.path + ": ";
    out.error = message.compare(0, prefix.size(), prefix) == 0 ? message.substr(prefix.size()) : message;
  } catch (const std::bad_alloc&) {
    out.error = "out of memory while decoding (image too large)";
  }
  return out;
}

PrepareSummary prepare_files(const PrepareOptions& options, PreparedMeta meta) {
  SourceListing listing = list_dataset_files(options.source, options.input, options.split);
  meta.class_names = listing.class_names;
  if (options.channels == 0) meta.channels = 3;
  if (options.limit > 0 && static_cast<int64_t>(listing.files.size()) > options.limit) listing.files.resize(options.limit);
  log()->info("[prepare] {} {}: {} files, {} classes", options.source, options.split, listing.files.size(),
              listing.class_names.size());
  PreparedWriter writer(options.output, meta);
  for (const auto& m : listing.missing) writer.skip(m.name, m.reason);
  // Blocks of files are decoded in parallel and appended in listing order, so the
  // output does not depend on the thread count.
  const int threads = std::max(1, options.threads);
  const size_t block = 64 * static_cast<size_t>(threads);
  std::vector<Decoded> results;
  auto last_log = std::chrono::steady_clock::now();
  for (size_t start = 0; start < listing.files.size(); start += block) {
    const size_t count = std::min(block, listing.files.size() - start);
    results.assign(count, Decoded{});
    auto work = [&](int t) {
      for (size_t i = t; i < count; i += threads) results[i] = decode_and_fit(listing.files[start + i], options, meta.channels);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    for (size_t i = 0; i < count; ++i) {
      const SourceFile& file = listing.files[start + i];
      if (results[i].image) {
        writer.add(*results[i].image, file.label, file.name);
      } else {
        writer.skip(file.name, results[i].error);
      }
    }
    if (std::chrono::steady_clock::now() - last_log > std::chrono::seconds(10)) {
      log()->info("[prepare] {} / {} files", start + count, listing.files.size());
      last_log = std::chrono::steady_clock::now();
    }
  }
  return writer.finish();
}

}  // namespace

PrepareSummary prepare_dataset(const PrepareOptions& options) {
  if (options.output.empty()) throw_usage("prepare: --output is required");
  if (options.resolution <= 0) throw_usage("prepare: --resolution must be positive");
  if (options.channels != 0 && options.channels != 1 && options.channels != 3) {
    throw_usage("prepare: --channels must be 1 or 3");
  }
  const auto parent = std::filesystem::path(options.output).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  PreparedMeta meta;
  meta.source = options.source;
  meta.input = options.input;
  meta.split = options.split;
  meta.crop = fit_mode_name(options.fit);
  meta.resolution = options.resolution;
  meta.channels = options.channels;
  const auto started = std::chrono::steady_clock::now();
  PrepareSummary summary = options.source == "fashion-mnist" ? prepare_fashion_mnist(options, meta)
                                                              : prepare_files(options, meta);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  log()->info("[prepare] wrote {} images ({} skipped, see {}) to {} in {:.1f} s; content hash {}", summary.images,
              summary.skipped, summary.report_path, summary.path, seconds, summary.content_hash);
  return summary;
}

}  // namespace difffit
