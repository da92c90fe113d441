// Encodes a prepared image file (datasets/prepared_writer.h) into a latent dataset file
// (datasets/latent_format.h) with the SD autoencoder, so DiT trains on latents as the
// paper does: latents = posterior sample * scaling_factor of the images mapped to [-1, 1].
#pragma once

#include <cstdint>
#include <string>

#include "worker/model/vae_loader.h"

namespace difffit {

struct EncodeDatasetOptions {
  std::string input;         // prepared image file (uint8 images)
  std::string output;        // latent dataset file, written atomically
  int64_t batch_size = 32;   // images per encoder pass
  bool flip_both = true;     // also encode each image flipped horizontally (latents_flipped)
  uint64_t seed = 0;         // the posterior noise: one generator, drawn batch by batch in file order
  int64_t limit = 0;         // the first N images only (0 = all)
};

struct EncodeDatasetSummary {
  int64_t images = 0;
  int64_t latent_size = 0;
  double seconds = 0;
  std::string content_hash;
};

// Gray (1-channel) images are replicated to RGB when the VAE takes 3 channels. Throws a data
// error naming the file when the images do not fit the VAE (channels, side not a multiple
// of its downsampling factor).
EncodeDatasetSummary encode_prepared_dataset(const LoadedVae& vae, const EncodeDatasetOptions& options);

// uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1], bit-identical to the training
// loader's (v / 255 - 0.5) / 0.5.
at::Tensor images_to_model_space(const at::Tensor& images);

}  // namespace difffit
