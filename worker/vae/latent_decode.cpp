#include "worker/vae/latent_decode.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/logging.h"
#include "common/progress_bar.h"
#include "datasets/prepared_writer.h"
#include "worker/model/pixel_range.h"

namespace difffit {

at::Tensor decode_to_uint8(AutoencoderKLImpl& vae, const at::Tensor& latents,
                           const std::function<void(int64_t, int64_t)>& on_progress) {
  const int64_t n = latents.size(0), step = std::max<int64_t>(1, vae.run_options().batch_size);
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < n; start += step) {
    const int64_t count = std::min(step, n - start);
    parts.push_back(to_uint8_images(vae.decode(latents.narrow(0, start, count))));
    if (on_progress) on_progress(start + count, n);
  }
  if (parts.empty()) throw_data("VAE decode: no latents");
  return at::cat(parts);
}

int64_t decode_latent_file(const LoadedVae& vae, const DecodeFileOptions& options) {
  AutoencoderKLImpl& model = *vae.model.ptr();
  const VaeConfig& config = model.config();
  if (options.batch_size < 1) throw_usage("vae decode: --batch-size must be at least 1");
  model.run_options().batch_size = options.batch_size;
  Hdf5Reader in(options.input);
  const std::vector<int64_t> shape = in.shape("latents");
  if (shape.size() != 4 || shape[1] != config.latent_channels) {
    throw_data(options.input + ": 'latents' must be float32 (N, " + std::to_string(config.latent_channels) +
               ", h, w) for this VAE");
  }
  if (in.has_attribute("scaling_factor")) {
    const std::string text = in.read_string_attribute("scaling_factor");
    const double stored = std::atof(text.c_str());
    if (std::abs(stored - config.scaling_factor) > 1e-9 * std::abs(config.scaling_factor)) {
      log()->warn("[vae] {} records scaling factor {}, the VAE uses {}", options.input, text, config.scaling_factor);
    }
  }
  if (in.has_attribute("vae_sha256") && in.read_string_attribute("vae_sha256") != vae.sha256) {
    log()->warn("[vae] {} was encoded with another VAE ({}), decoding with {}", options.input,
                in.read_string_attribute("vae_sha256").substr(0, 16), vae.sha256.substr(0, 16));
  }
  const int64_t n = shape[0], f = config.downsample_factor();
  const int64_t height = shape[2] * f, width = shape[3] * f, channels = config.out_channels;
  Hdf5Writer out(options.output);
  out.create_appendable("images", at::kByte, {height, width, channels},
                        height == width ? image_chunk_rows(height, channels) : 1, 4);
  ProgressBar progress("[vae decode]", n);
  for (int64_t start = 0; start < n; start += options.batch_size) {
    const int64_t count = std::min(options.batch_size, n - start);
    out.append("images", to_uint8_images(model.decode(in.read_rows("latents", at::kFloat, start, count))));
    progress.update(start + count);
  }
  progress.finish();
  // Labels under both names: `labels` for the evaluation, `y` as in sample files.
  if (in.has("y")) {
    at::Tensor y = in.read("y", at::kLong, 1);
    out.write("y", y);
    out.write("labels", y);
  } else if (in.has("labels")) {
    out.write("labels", in.read("labels", at::kLong, 1));
  }
  if (in.has("class_names")) out.write_strings("class_names", in.read_strings("class_names"));
  char scale[32];
  std::snprintf(scale, sizeof scale, "%.9g", config.scaling_factor);
  out.write_string_attribute("decoded_from", std::filesystem::path(options.input).filename().string());
  out.write_string_attribute("vae_file", std::filesystem::path(vae.path).filename().string());
  out.write_string_attribute("vae_sha256", vae.sha256);
  out.write_string_attribute("scaling_factor", scale);
  out.commit();
  log()->info("[vae] decoded {} latents into {}x{}x{} images: {}", n, height, width, channels, options.output);
  return n;
}

}  // namespace difffit
