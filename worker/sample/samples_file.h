// The samples file (`samples.h5`, written by `difffit run` and `difffit sample`): `latents`
// and `y` always; `images` uint8 (N, H, W, C) for pixel-space models, and for latent models
// when a VAE decodes them; string attributes saying how the samples were made.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace difffit {

class Communicator;
struct SampleResult;

struct SamplesFile {
  at::Tensor latents;  // float32 (N, C, H, W), the model-space samples
  at::Tensor labels;   // int64 (N): the class each sample was drawn for
  at::Tensor images;   // uint8 (N, H, W, C); undefined for latents nobody decoded
  // In a data-parallel run rank 0 holds all N images, the other ranks only their decode
  // share: rows [images_first, images_first + images.size(0)).
  int64_t images_first = 0;
  std::map<std::string, std::string> attributes;  // sampler, seed, vae_sha256, ...
};

struct LatentDecoding {
  std::string vae;         // AutoencoderKL weights; "" = keep latents only
  c10::Device device = c10::kCPU;
  int64_t batch_size = 16; // latents per decoder pass
  bool bf16 = false;       // decoder under bf16 autocast
  std::function<void()> after_batch;  // one process only: runs after each decoded batch (may throw)
};

// The samples with their images: pixel-space samples (1 or 3 channels) as uint8 directly,
// latent ones through the VAE (batched, with progress; its file name and SHA-256 recorded
// as vae_file / vae_sha256), or none when no VAE is given. A VAE whose latent channels
// differ from the samples' is a data error naming the file. With `ranks` (every rank holding
// all the samples) each rank decodes its share and every rank gets all the images.
SamplesFile samples_with_images(const SampleResult& samples, const LatentDecoding& decoding,
                                Communicator* ranks = nullptr);

// Written atomically.
void write_samples_file(const std::string& path, const SamplesFile& file);

}  // namespace difffit
