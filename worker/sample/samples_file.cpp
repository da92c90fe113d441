#include "worker/sample/samples_file.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>

#include "common/communicator.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/progress_bar.h"
#include "worker/model/pixel_range.h"
#include "worker/model/vae_loader.h"
#include "worker/sample/sample_generator.h"
#include "worker/vae/latent_decode.h"

namespace difffit {

SamplesFile samples_with_images(const SampleResult& samples, const LatentDecoding& decoding, Communicator* ranks) {
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
  const int64_t n = samples.latents.size(0);
  const bool shared = ranks && ranks->size() > 1;
  const RowShare mine = shared ? row_share(n, 0, ranks->rank(), ranks->size()) : RowShare{0, n};
  ProgressBar progress("[vae decode]", mine.count);
  // A rank without a share still decodes one latent: the gather needs the images' shape.
  file.images = decode_to_uint8(*vae.model, samples.latents.narrow(0, mine.count > 0 ? mine.first : 0, std::max<int64_t>(mine.count, 1)),
                                [&](int64_t done, int64_t) {
                                  progress.update(done);
                                  if (decoding.after_batch && !shared) decoding.after_batch();
                                })
                    .narrow(0, 0, mine.count);
  progress.finish();
  if (shared) {
    // Only rank 0 writes samples.h5: the others keep their share for their part of the scoring.
    at::Tensor all = gather_rows(*ranks, file.images, n, 0);
    if (ranks->rank() == 0) {
      file.images = all;
    } else {
      file.images_first = mine.first;
    }
  }
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
