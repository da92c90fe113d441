// Feature extraction over image sets, streamed in batches, and reference
// statistics cached by (dataset content hash, feature network, N).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>

#include "eval/feature_stats.h"

namespace difffit {

class Communicator;
class FeatureNetwork;
class ImageSet;

struct ExtractOptions {
  int64_t max_images = 0;   // use the first N images (0 = all)
  int64_t batch_size = 50;  // images per forward pass
  bool keep_features = false;  // also return the raw (N, D) features (KID, precision/recall need them)
  bool spatial = false;        // also the statistics of the spatial features (sFID)
  bool keep_logits = false;    // also return the class logits (Inception Score)
  // Share the images over these ranks (contiguous runs, row_share): each rank runs the
  // network on its own rows, the statistics merge (Chan) and the kept rows are gathered,
  // so every rank gets the result of the whole set. Null: this process does it all.
  Communicator* ranks = nullptr;
  std::function<void()> after_batch;  // one process only: runs after each batch (may throw, e.g. to stop)
  bool warn_small_set = true;  // warn when the set has no more images than feature dimensions
};

struct ExtractResult {
  FeatureStats stats;
  at::Tensor features;         // float32 (N, D) when keep_features
  FeatureStats spatial_stats;  // when spatial
  at::Tensor logits;           // float32 (N, classes) when keep_logits
  int64_t images = 0;
  double images_per_second = 0.0;
  bool from_cache = false;
  std::string cache_file;  // where the stats were read or written ("" without a cache)
};

ExtractResult extract_features(const ImageSet& images, FeatureNetwork& net, const ExtractOptions& options);

// The reference set's statistics: read from cache_dir when a file for the same
// (content hash, net id, N) exists (and holds features if they are wanted; the spatial
// statistics live in a second file), else computed and written there. An empty
// cache_dir disables the cache. Logits are never cached (IS is a samples-only metric).
// Shared over options.ranks, rank 0 decides whether the cache holds them (then only rank 0
// reads it, the others get an empty result) and writes the file it computed with the others.
ExtractResult reference_statistics(const std::string& path, FeatureNetwork& net, const ExtractOptions& options,
                                   const std::string& cache_dir);

// $DIFFFIT_CACHE_DIR, else $XDG_CACHE_HOME/difffit, else ~/.cache/difffit.
std::string default_cache_dir();

}  // namespace difffit
