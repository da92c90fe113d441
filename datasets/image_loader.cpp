#include "datasets/image_loader.h"

#include <ATen/ATen.h>
#include <hdf5.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include "common/error.h"
#include "common/input_file.h"
#include "common/hdf5_handles.h"
#include "common/hdf5_tensors.h"
#include "common/logging.h"
#include "datasets/latent_format.h"

namespace difffit {
namespace {

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A small counter-based generator: the same (seed, stream) gives the same numbers
// on every platform and LibTorch version.
class StreamRng {
 public:
  StreamRng(uint64_t seed, uint64_t stream) : state_(mix64(seed ^ mix64(stream + 0x9e3779b97f4a7c15ull))) {}
  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ull); }
  uint64_t below(uint64_t n) {  // uniform in [0, n), unbiased by rejection
    const uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);
    uint64_t x;
    do x = next(); while (x >= limit);
    return x % n;
  }

 private:
  uint64_t state_;
};

// torchvision's ToTensor + Normalize(0.5, 0.5) in float32: (v / 255 - 0.5) / 0.5.
struct ScaleTable {
  float value[256];
  ScaleTable() {
    for (int v = 0; v < 256; ++v) value[v] = (static_cast<float>(v) / 255.0f - 0.5f) / 0.5f;
  }
};

// Reads single rows of the images (or latents) dataset, keeping the dataset open with a
// large chunk cache: small images share chunks, so without the cache every read would
// decompress a whole chunk again. Used when the data do not fit in memory.
class RowReader {
 public:
  RowReader(const std::string& path, int64_t row_bytes, int64_t cache_bytes, const std::string& dataset = "images",
            hid_t memory_type = H5T_NATIVE_UINT8)
      : path_(path), row_bytes_(row_bytes), dataset_name_(dataset), memory_type_(memory_type) {
    hdf5::silence_errors();
    check_input_file(path, "an HDF5 file");
    file_ = hdf5::Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!file_.valid()) throw_io(path + ": cannot open as HDF5 (" + hdf5::last_error() + ")");
    hdf5::Handle access(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    H5Pset_chunk_cache(access.get(), 12421, static_cast<size_t>(std::max<int64_t>(cache_bytes, 1 << 20)), 1.0);
    dataset_ = hdf5::Handle(H5Dopen2(file_.get(), dataset.c_str(), access.get()), H5Dclose);
    if (!dataset_.valid()) throw_io(path + ": cannot open dataset '" + dataset + "'");
    file_space_ = hdf5::Handle(H5Dget_space(dataset_.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(file_space_.get());
    if (rank < 1) throw_io(path + ": dataset '" + dataset + "' has no rows");
    dims_.resize(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(file_space_.get(), dims_.data(), nullptr);
    std::vector<hsize_t> one = dims_;
    one[0] = 1;
    memory_space_ = hdf5::Handle(H5Screate_simple(rank, one.data(), nullptr), H5Sclose);
  }

  void read(int64_t row, void* out) {
    std::vector<hsize_t> start(dims_.size(), 0), count = dims_;
    start[0] = static_cast<hsize_t>(row);
    count[0] = 1;
    if (H5Sselect_hyperslab(file_space_.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
        H5Dread(dataset_.get(), memory_type_, memory_space_.get(), file_space_.get(), H5P_DEFAULT, out) < 0) {
      throw_io(path_ + ": reading row " + std::to_string(row) + " of '" + dataset_name_ + "' failed (" +
               hdf5::last_error() + ")");
    }
  }

 private:
  std::string path_;
  int64_t row_bytes_;
  std::string dataset_name_;
  hid_t memory_type_;
  hdf5::Handle file_{-1, H5Fclose}, dataset_{-1, H5Dclose}, file_space_{-1, H5Sclose}, memory_space_{-1, H5Sclose};
  std::vector<hsize_t> dims_;
};

struct Produced {
  LoaderCursor cursor;  // of this batch
  ImageBatch batch;
  std::exception_ptr error;
};

}  // namespace

struct ImageBatchLoader::Impl {
  LoaderOptions options;
  int64_t n = 0, height = 0, width = 0, channels = 0, num_classes = 0;
  int64_t row_bytes = 0, per_epoch = 0, batches = 0;
  std::vector<std::string> class_names;
  std::string content_hash;
  std::vector<int64_t> labels;
  std::vector<uint8_t> images;           // all images when in memory
  std::unique_ptr<RowReader> reader;     // per-image reads otherwise (producer thread only)
  ScaleTable scale;
  // A latent dataset file (datasets/latent_format.h): float rows instead of uint8 images.
  bool latent = false;
  bool has_flipped = false;              // latents_flipped present (random flips pick its rows)
  std::vector<float> latent_rows, flipped_rows;            // in memory
  std::unique_ptr<RowReader> flipped_reader;                // per-row reads of latents_flipped

  LoaderCursor consumer;                 // next batch next() returns
  // Producer side (background thread).
  std::thread thread;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Produced> queue;
  bool stop = false;
  // Cached permutation for the producer's current epoch.
  int64_t cached_epoch = -1;
  std::vector<int64_t> cached_indices;

  std::vector<int64_t> epoch_indices(int64_t epoch) const {
    std::vector<int64_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    if (options.shuffle) {
      StreamRng rng(options.seed, static_cast<uint64_t>(epoch) * 2);
      for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(static_cast<uint64_t>(i) + 1)]);
    }
    // Rank r takes positions r, r + W, r + 2W, ... of the permutation; with drop_last
    // only the first W * floor(N / W) positions, so every rank has the same count.
    const int64_t used = options.drop_last ? (n / options.world_size) * options.world_size : n;
    std::vector<int64_t> mine;
    mine.reserve(static_cast<size_t>(used / options.world_size + 1));
    for (int64_t p = options.rank; p < used; p += options.world_size) mine.push_back(perm[p]);
    if (options.drop_last) mine.resize(static_cast<size_t>(batches * options.batch_size));
    return mine;
  }

  bool flipped(int64_t epoch, int64_t index) const {
    if (!options.random_flip) return false;
    return mix64(options.seed ^ mix64((static_cast<uint64_t>(epoch) * 2 + 1) ^ mix64(static_cast<uint64_t>(index)))) & 1;
  }

  LoaderCursor advance(LoaderCursor c) const {
    if (++c.batch >= batches) {
      c.batch = 0;
      ++c.epoch;
    }
    return c;
  }

  // The tensors of the batch that starts at epoch row `start` (the last one may be short).
  ImageBatch empty_batch(int64_t start) const {
    const int64_t count = std::min<int64_t>(options.batch_size, static_cast<int64_t>(cached_indices.size()) - start);
    ImageBatch out;
    out.images = at::empty({count, channels, height, width}, at::kFloat);
    out.labels = at::empty({count}, at::kLong);
    out.indices = at::empty({count}, at::kLong);
    return out;
  }

  ImageBatch make_batch(const LoaderCursor& c) {
    if (c.epoch != cached_epoch) {
      cached_indices = epoch_indices(c.epoch);
      cached_epoch = c.epoch;
    }
    if (latent) return make_latent_batch(c);
    const int64_t start = c.batch * options.batch_size;
    ImageBatch out = empty_batch(start);
    const int64_t count = out.labels.size(0);
    float* dst = out.images.data_ptr<float>();
    int64_t* lab = out.labels.data_ptr<int64_t>();
    int64_t* idx = out.indices.data_ptr<int64_t>();
    std::vector<uint8_t> buffer(reader ? static_cast<size_t>(row_bytes) : 0);
    const int64_t plane = height * width;
    for (int64_t b = 0; b < count; ++b) {
      const int64_t index = cached_indices[static_cast<size_t>(start + b)];
      idx[b] = index;
      lab[b] = labels[static_cast<size_t>(index)];
      const uint8_t* src;
      if (reader) {
        reader->read(index, buffer.data());
        src = buffer.data();
      } else {
        src = images.data() + index * row_bytes;
      }
      const bool flip = flipped(c.epoch, index);
      float* image = dst + b * channels * plane;
      for (int64_t y = 0; y < height; ++y) {
        const uint8_t* row = src + y * width * channels;
        for (int64_t x = 0; x < width; ++x) {
          const int64_t ox = flip ? width - 1 - x : x;
          for (int64_t ch = 0; ch < channels; ++ch) image[ch * plane + y * width + ox] = scale.value[row[x * channels + ch]];
        }
      }
    }
    return out;
  }

  // Latent rows as stored; a flipped image takes its row of latents_flipped.
  ImageBatch make_latent_batch(const LoaderCursor& c) {
    const int64_t start = c.batch * options.batch_size;
    ImageBatch out = empty_batch(start);
    const int64_t count = out.labels.size(0);
    const int64_t row_floats = channels * height * width;
    float* dst = out.images.data_ptr<float>();
    int64_t* lab = out.labels.data_ptr<int64_t>();
    int64_t* idx = out.indices.data_ptr<int64_t>();
    for (int64_t b = 0; b < count; ++b) {
      const int64_t index = cached_indices[static_cast<size_t>(start + b)];
      idx[b] = index;
      lab[b] = labels[static_cast<size_t>(index)];
      const bool flip = has_flipped && flipped(c.epoch, index);
      float* row = dst + b * row_floats;
      if (reader) {
        (flip ? flipped_reader : reader)->read(index, row);
      } else {
        const std::vector<float>& source = flip ? flipped_rows : latent_rows;
        std::copy_n(source.data() + index * row_floats, row_floats, row);
      }
    }
    return out;
  }

  void producer_loop(LoaderCursor c) {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return stop || static_cast<int>(queue.size()) < options.prefetch_batches; });
        if (stop) return;
      }
      Produced item;
      item.cursor = c;
      try {
        item.batch = make_batch(c);
      } catch (...) {
        item.error = std::current_exception();
      }
      const bool failed = static_cast<bool>(item.error);
      {
        std::lock_guard<std::mutex> lock(mutex);
        queue.push_back(std::move(item));
      }
      changed.notify_all();
      if (failed) return;
      c = advance(c);
    }
  }

  void start_thread() {
    if (options.prefetch_batches <= 0) return;
    stop = false;
    queue.clear();
    thread = std::thread([this, c = consumer] { producer_loop(c); });
  }

  void stop_thread() {
    if (!thread.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    changed.notify_all();
    thread.join();
    queue.clear();
  }
};

ImageBatchLoader::ImageBatchLoader(const LoaderOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  if (options.batch_size <= 0) throw_usage("loader: batch_size must be positive");
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    throw_usage("loader: need 0 <= rank < world_size");
  }
  auto reader = std::make_unique<Hdf5Reader>(options.path);
  // Prepared and latent files both say format_version 1; a later format is not guessed at
  // (a file without the attribute, made by hand, is read by its datasets).
  if (reader->has_attribute("format_version") && reader->read_int_attribute("format_version") != 1)
    throw_data(options.path + ": format_version " + std::to_string(reader->read_int_attribute("format_version")) +
               "; this difffit reads format 1 (prepare the data again with this version)");
  m.latent = reader->has(latent_format::kLatents) && !reader->has("images");
  if (m.latent) {
    std::vector<int64_t> shape = reader->shape(latent_format::kLatents);
    if (shape.size() != 4 || shape[2] != shape[3]) {
      throw_data(options.path + ": 'latents' must be float32 (N, C, S, S)");
    }
    m.n = shape[0];
    m.channels = shape[1];
    m.height = shape[2];
    m.width = shape[3];
    m.row_bytes = m.channels * m.height * m.width * static_cast<int64_t>(sizeof(float));
    m.has_flipped = reader->has(latent_format::kLatentsFlipped);
    if (m.has_flipped && reader->shape(latent_format::kLatentsFlipped) != shape) {
      throw_data(options.path + ": 'latents_flipped' and 'latents' differ in shape");
    }
    if (options.random_flip && !m.has_flipped) {
      m.options.random_flip = false;  // a flip needs the flipped image's own latents
      log()->info("[data] {}: no 'latents_flipped' (encoded with --flip none): training without flips", options.path);
    }
  } else {
    std::vector<int64_t> shape = reader->shape("images");
    if (shape.size() != 4 || shape[1] != shape[2] || (shape[3] != 1 && shape[3] != 3)) {
      throw_data(options.path + ": 'images' must be uint8 (N, H, W, C) with H = W and C in {1, 3}");
    }
    m.n = shape[0];
    m.height = shape[1];
    m.width = shape[2];
    m.channels = shape[3];
    m.row_bytes = m.height * m.width * m.channels;
  }
  const std::string dataset = m.latent ? latent_format::kLatents : "images";
  if (m.row_bytes <= 0)
    throw_data(options.path + ": '" + dataset + "' holds empty rows (" + std::to_string(m.channels) + " x " +
               std::to_string(m.height) + " x " + std::to_string(m.width) + ")");
  // The type check of a read (uint8 pixels, float latents), also for data read row by row later.
  if (m.n > 0) reader->read_rows(dataset, m.latent ? at::kFloat : at::kByte, 0, 1);
  at::Tensor labels = reader->read("labels", at::kLong, 1);
  if (labels.size(0) != m.n) throw_data(options.path + ": 'labels' and 'images' differ in length");
  m.labels.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + m.n);
  if (reader->has("class_names")) m.class_names = reader->read_strings("class_names");
  if (reader->has_attribute("content_hash")) m.content_hash = reader->read_string_attribute("content_hash");
  if (m.has_flipped && reader->has_attribute("content_hash_flipped"))
    m.content_hash += "+" + reader->read_string_attribute("content_hash_flipped");
  m.num_classes = reader->has_attribute("num_classes") ? reader->read_int_attribute("num_classes")
                                                       : static_cast<int64_t>(m.class_names.size());
  for (int64_t l : m.labels) {
    if (l < 0 || l >= m.num_classes) throw_data(options.path + ": label " + std::to_string(l) + " outside num_classes");
  }
  const int64_t per_rank = options.drop_last ? m.n / options.world_size
                                             : (m.n - options.rank + options.world_size - 1) / options.world_size;
  m.batches = options.drop_last ? per_rank / options.batch_size
                                : (per_rank + options.batch_size - 1) / options.batch_size;
  if (m.batches == 0) {
    throw_data(options.path + ": " + std::to_string(m.n) + " images give no full batch of " +
               std::to_string(options.batch_size) + " on each of " + std::to_string(options.world_size) + " ranks");
  }
  if (m.latent) {
    const int64_t copies = m.has_flipped ? 2 : 1;
    if (m.n * m.row_bytes * copies <= options.max_memory_bytes) {
      const int64_t row_floats = m.row_bytes / static_cast<int64_t>(sizeof(float));
      m.latent_rows.resize(static_cast<size_t>(m.n * row_floats));
      reader->read_rows_into(latent_format::kLatents, at::kFloat, 0, m.n, m.latent_rows.data());
      if (m.has_flipped) {
        m.flipped_rows.resize(m.latent_rows.size());
        reader->read_rows_into(latent_format::kLatentsFlipped, at::kFloat, 0, m.n, m.flipped_rows.data());
      }
    } else {
      m.reader = std::make_unique<RowReader>(options.path, m.row_bytes, options.disk_cache_bytes,
                                             latent_format::kLatents, H5T_NATIVE_FLOAT);
      if (m.has_flipped) {
        m.flipped_reader = std::make_unique<RowReader>(options.path, m.row_bytes, options.disk_cache_bytes,
                                                       latent_format::kLatentsFlipped, H5T_NATIVE_FLOAT);
      }
    }
  } else if (m.n * m.row_bytes <= options.max_memory_bytes) {
    m.images.resize(static_cast<size_t>(m.n * m.row_bytes));
    const int64_t step = std::max<int64_t>(1, (64LL << 20) / m.row_bytes);  // 64 MiB per read
    for (int64_t s = 0; s < m.n; s += step) {
      reader->read_rows_into("images", at::kByte, s, std::min(step, m.n - s), m.images.data() + s * m.row_bytes);
    }
  } else {
    m.reader = std::make_unique<RowReader>(options.path, m.row_bytes, options.disk_cache_bytes);
  }
  log()->debug("[data] {}: {} {} {}x{}x{}, {} batches/epoch on rank {}/{}{}", options.path, m.n,
               m.latent ? "latents" : "images", m.height, m.width, m.channels, m.batches, options.rank,
               options.world_size, m.reader ? " (read per image)" : "");
  m.start_thread();
}

ImageBatchLoader::~ImageBatchLoader() { impl_->stop_thread(); }

ImageBatch ImageBatchLoader::next() {
  Impl& m = *impl_;
  if (m.options.prefetch_batches <= 0) {
    ImageBatch batch = m.make_batch(m.consumer);
    m.consumer = m.advance(m.consumer);
    return batch;
  }
  Produced item;
  {
    std::unique_lock<std::mutex> lock(m.mutex);
    m.changed.wait(lock, [&] { return !m.queue.empty(); });
    item = std::move(m.queue.front());
    m.queue.pop_front();
  }
  m.changed.notify_all();
  if (item.error) {
    // The producer stopped; restart it from the same place so a retry is possible.
    m.stop_thread();
    m.start_thread();
    std::rethrow_exception(item.error);
  }
  m.consumer = m.advance(item.cursor);
  return std::move(item.batch);
}

LoaderCursor ImageBatchLoader::cursor() const { return impl_->consumer; }

void ImageBatchLoader::seek(const LoaderCursor& cursor) {
  if (cursor.epoch < 0 || cursor.batch < 0 || cursor.batch >= impl_->batches) {
    throw_usage("loader: cursor (" + std::to_string(cursor.epoch) + ", " + std::to_string(cursor.batch) +
                ") outside 0.." + std::to_string(impl_->batches - 1) + " batches per epoch");
  }
  impl_->stop_thread();
  impl_->consumer = cursor;
  impl_->start_thread();
}

int64_t ImageBatchLoader::num_images() const { return impl_->n; }
int64_t ImageBatchLoader::num_classes() const { return impl_->num_classes; }
int64_t ImageBatchLoader::channels() const { return impl_->channels; }
int64_t ImageBatchLoader::resolution() const { return impl_->height; }
int64_t ImageBatchLoader::batches_per_epoch() const { return impl_->batches; }
bool ImageBatchLoader::in_memory() const { return !impl_->reader; }
bool ImageBatchLoader::latent() const { return impl_->latent; }
const std::vector<std::string>& ImageBatchLoader::class_names() const { return impl_->class_names; }
const std::string& ImageBatchLoader::content_hash() const { return impl_->content_hash; }
std::vector<int64_t> ImageBatchLoader::epoch_indices(int64_t epoch) const { return impl_->epoch_indices(epoch); }
bool ImageBatchLoader::flipped(int64_t epoch, int64_t index) const { return impl_->flipped(epoch, index); }

}  // namespace difffit
