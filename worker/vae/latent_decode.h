// Decodes latents (a run's samples.h5 or `difffit sample` output: `latents` float32
// (N, z, s, s) scaled by the VAE's scaling factor) into uint8 images that the evaluation
// and the sample grids read.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>

#include "worker/model/vae_loader.h"

namespace difffit {

struct DecodeFileOptions {
  std::string input;        // HDF5 with `latents` (+ `y` or `labels`, copied)
  std::string output;       // HDF5: images uint8 (N, H, W, C), labels, y; written atomically
  int64_t batch_size = 8;   // latents per decoder pass
};

// Returns the number of images written.
int64_t decode_latent_file(const LoadedVae& vae, const DecodeFileOptions& options);

// Latents -> uint8 (N, H, W, C) images: clamp(127.5 x + 128, 0, 255) truncated, in batches
// of the module's run options; `on_progress(done, total)` after each batch when given.
at::Tensor decode_to_uint8(AutoencoderKLImpl& vae, const at::Tensor& latents,
                           const std::function<void(int64_t, int64_t)>& on_progress = nullptr);

}  // namespace difffit
