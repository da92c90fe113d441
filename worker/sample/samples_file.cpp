#include "worker/sample/samples_file.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/progress_bar.h"
#include "worker/model/vae_loader.h"
#include "worker/sample/sample_generator.h"
#include "worker/vae/latent_decode.h"

namespace difffit {

SamplesFile samples_with_images(const SampleResult& samples, const LatentDecoding& decoding) {
  SamplesFile file;
  file.latents = samples.latents;
  file.labels = samples.labels;
  const int64_t channels = samples.latents.size(1);
  if (channels == 1 || channels == 3) {
    file.images = to_uint8_images(samples.latents);
    return file;
  }
  if (decoding.vae.empty()) return file;
  VaeLoadOptions load;
  load.device = decoding.device;
  LoadedVae vae = load_vae(decoding.vae, load);
  if (vae.model->config().latent_channels != channels)
    throw_data(decoding.vae + ": a VAE with " + std::to_string(vae.model->config().latent_channels) +
               " latent channels cannot decode " + std::to_string(channels) + "-channel samples");
  vae.model->run_options().batch_size = std::max<int64_t>(decoding.batch_size, 1);
  vae.model->run_options().bf16 = decoding.bf16;
  ProgressBar progress("[vae decode]", samples.latents.size(0));
  file.images = decode_to_uint8(*vae.model, samples.latents, [&](int64_t done, int64_t) { progress.update(done); });
  progress.finish();
  file.attributes["vae_file"] = std::filesystem::path(decoding.vae).filename().string();
  file.attributes["vae_sha256"] = vae.sha256;
  return file;
}

void write_samples_file(const std::string& path, const SamplesFile& file) {
  Hdf5Writer out(path);
  out.write("latents", file.latents);
  out.write("y", file.labels);
  if (file.images.defined()) out.write("images", file.images, /*compress=*/true);
  for (const auto& [key, value] : file.attributes) out.write_string_attribute(key, value);
  out.commit();
}

}  // namespace difffit
