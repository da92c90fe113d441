// Batches of training images from a prepared HDF5 file (prepared_writer.h), as
// DiT's data pipeline produces them: per-epoch shuffling, random horizontal flip,
// scaling to [-1, 1], sharding across data-parallel ranks, and a background thread
// that prepares the next batches while the training step runs.
//
// Everything random derives from (seed, epoch) only: the epoch's permutation from
// (seed, epoch), each image's flip from (seed, epoch, image index). So a cursor
// (epoch, batch) pins the stream exactly, and seek() resumes it bit for bit.
//
// A latent dataset file (`difffit vae encode`, datasets/latent_format.h) is read the same
// way: batches hold its float latents (B, z, s, s) as stored, and a flipped image takes its
// row of `latents_flipped` (without that dataset there are no flips).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace difffit {

struct LoaderOptions {
  std::string path;                       // prepared HDF5 file (images) or latent dataset file
  int64_t batch_size = 64;                // images per batch on this rank
  uint64_t seed = 0;                      // shuffling and flips derive from (seed, epoch) only
  bool shuffle = true;                    // a new permutation every epoch (else file order)
  bool random_flip = true;                // horizontal flip p = 0.5
  int rank = 0, world_size = 1;           // data-parallel shard: each rank sees a disjoint part of every epoch
  bool drop_last = true;                  // drop the partial last batch (keeps ranks in lockstep)
  int prefetch_batches = 2;               // background thread queue depth (0 = synchronous)
  int64_t max_memory_bytes = 4LL << 30;   // load all images into memory when they fit, else read per image
  int64_t disk_cache_bytes = 256LL << 20; // HDF5 chunk cache when reading per image
};

struct LoaderCursor {  // position, for exact resume
  int64_t epoch = 0;
  int64_t batch = 0;
};

struct ImageBatch {
  at::Tensor images;  // float32 (B, C, H, W) in [-1, 1]; for a latent file, the latents
  at::Tensor labels;  // int64 (B)
  at::Tensor indices; // int64 (B): row of each image in the file (for tests and debugging)
};

class ImageBatchLoader {
 public:
  explicit ImageBatchLoader(const LoaderOptions& options);
  ~ImageBatchLoader();
  ImageBatchLoader(const ImageBatchLoader&) = delete;
  ImageBatchLoader& operator=(const ImageBatchLoader&) = delete;

  ImageBatch next();                      // advances; wraps to the next epoch automatically
  LoaderCursor cursor() const;            // position of the NEXT batch
  void seek(const LoaderCursor& cursor);  // continue exactly from there (bit-identical stream)

  int64_t num_images() const;             // in the file
  int64_t num_classes() const;
  int64_t channels() const;
  int64_t resolution() const;
  int64_t batches_per_epoch() const;      // on this rank
  bool in_memory() const;                 // whether the images were loaded into memory
  bool latent() const;                    // a latent dataset file (channels/resolution are the latents')
  const std::vector<std::string>& class_names() const;
  // The file's content_hash attribute (SHA-256 of its images or latents and labels, written by
  // prepare and vae encode; with latents_flipped, that dataset's hash after a '+'); "" without it.
  const std::string& content_hash() const;

  // This rank's image rows for `epoch`, in batch order (batches are consecutive slices).
  std::vector<int64_t> epoch_indices(int64_t epoch) const;
  // Whether image `index` is flipped in `epoch`.
  bool flipped(int64_t epoch, int64_t index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace difffit
