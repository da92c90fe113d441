#include "worker/vae/latent_encode.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/logging.h"
#include "common/progress_bar.h"
#include "common/sha256.h"
#include "datasets/latent_format.h"

namespace difffit {
namespace {

// The loader's table: (v / 255 - 0.5) / 0.5 in float32, for v = 0..255.
at::Tensor scale_table() {
  at::Tensor table = at::empty({256}, at::kFloat);
  float* t = table.data_ptr<float>();
  for (int v = 0; v < 256; ++v) t[v] = (static_cast<float>(v) / 255.0f - 0.5f) / 0.5f;
  return table;
}

void copy_string_attribute(const Hdf5Reader& in, Hdf5Writer& out, const std::string& name) {
  if (in.has_attribute(name)) out.write_string_attribute(name, in.read_string_attribute(name));
}

void hash_tensor(Sha256& sha, const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  sha.update(c.data_ptr(), static_cast<size_t>(c.numel() * c.element_size()));
}

}  // namespace

at::Tensor images_to_model_space(const at::Tensor& images) {
  static const at::Tensor table = scale_table();
  return table.index_select(0, images.reshape({-1}).to(at::kLong))
      .view(images.sizes())
      .permute({0, 3, 1, 2})
      .contiguous();
}

EncodeDatasetSummary encode_prepared_dataset(const LoadedVae& vae, const EncodeDatasetOptions& options) {
  const auto begin = std::chrono::steady_clock::now();
  AutoencoderKLImpl& model = *vae.model.ptr();
  const VaeConfig& config = model.config();
  if (options.batch_size < 1) throw_usage("vae encode: --batch-size must be at least 1");
  Hdf5Reader in(options.input);
  if (in.has(latent_format::kLatents) && !in.has("images")) {
    throw_data(options.input + ": already a latent dataset (expected a prepared image file)");
  }
  const std::vector<int64_t> shape = in.shape("images");
  if (shape.size() != 4 || shape[1] != shape[2]) {
    throw_data(options.input + ": 'images' must be uint8 (N, H, W, C) with H = W");
  }
  const int64_t total = options.limit > 0 ? std::min(options.limit, shape[0]) : shape[0];
  const int64_t side = shape[1], channels = shape[3], factor = config.downsample_factor();
  if (total == 0) throw_data(options.input + ": no images");
  if (side % factor != 0) {
    throw_data(options.input + ": images are " + std::to_string(side) + " px, not a multiple of the VAE's " +
               std::to_string(factor) + "x downsampling");
  }
  const bool replicate_gray = channels == 1 && config.in_channels == 3;
  if (channels != config.in_channels && !replicate_gray) {
    throw_data(options.input + ": " + std::to_string(channels) + "-channel images, the VAE takes " +
               std::to_string(config.in_channels));
  }
  if (replicate_gray) log()->info("[vae] {}: gray images are replicated to RGB", options.input);
  at::Tensor labels = in.read("labels", at::kLong, 1);
  if (labels.size(0) < total) throw_data(options.input + ": 'labels' is shorter than 'images'");
  labels = labels.narrow(0, 0, total).contiguous();

  const int64_t s = side / factor, z = config.latent_channels;
  const int64_t row_bytes = z * s * s * 4;
  const int64_t chunk_rows = std::max<int64_t>(1, (256 * 1024) / row_bytes);
  Hdf5Writer out(options.output);
  out.create_appendable(latent_format::kLatents, at::kFloat, {z, s, s}, chunk_rows, 0);
  if (options.flip_both) out.create_appendable(latent_format::kLatentsFlipped, at::kFloat, {z, s, s}, chunk_rows, 0);

  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  Sha256 hash, hash_flipped;
  ProgressBar progress("[vae encode]", total);
  for (int64_t start = 0; start < total; start += options.batch_size) {
    const int64_t count = std::min(options.batch_size, total - start);
    at::Tensor x = images_to_model_space(in.read_rows("images", at::kByte, start, count));
    if (replicate_gray) x = x.expand({count, 3, side, side}).contiguous();
    at::Tensor latents = model.sample_latents(x, generator);
    out.append(latent_format::kLatents, latents);
    hash_tensor(hash, latents);
    if (options.flip_both) {
      at::Tensor flipped = model.sample_latents(x.flip({3}), generator);
      out.append(latent_format::kLatentsFlipped, flipped);
      hash_tensor(hash_flipped, flipped);
    }
    progress.update(start + count);
  }
  progress.finish();
  hash_tensor(hash, labels);

  EncodeDatasetSummary summary;
  summary.images = total;
  summary.latent_size = s;
  summary.content_hash = hash.hex_digest();
  out.write("labels", labels);
  if (in.has("class_names")) out.write_strings("class_names", in.read_strings("class_names"));
  const int64_t num_classes = in.has_attribute("num_classes") ? in.read_int_attribute("num_classes")
                              : in.has("class_names")         ? static_cast<int64_t>(in.read_strings("class_names").size())
                                                              : labels.max().item<int64_t>() + 1;
  char scale[32];
  std::snprintf(scale, sizeof scale, "%.9g", config.scaling_factor);
  out.write_int_attribute("format_version", 1);
  out.write_string_attribute("kind", latent_format::kKind);
  for (const char* name : {"source", "split", "crop", "description"}) copy_string_attribute(in, out, name);
  out.write_int_attribute("resolution", side);
  out.write_int_attribute("latent_size", s);
  out.write_int_attribute("latent_channels", z);
  out.write_int_attribute("num_classes", num_classes);
  out.write_int_attribute("num_images", total);
  out.write_string_attribute("scaling_factor", scale);
  out.write_string_attribute("vae_file", std::filesystem::path(vae.path).filename().string());
  out.write_string_attribute("vae_sha256", vae.sha256);
  out.write_string_attribute("vae_config", config.describe());
  out.write_string_attribute("seed", std::to_string(options.seed));
  out.write_string_attribute("flip", options.flip_both ? "both" : "none");
  if (in.has_attribute("content_hash")) {
    out.write_string_attribute("source_content_hash", in.read_string_attribute("content_hash"));
  }
  out.write_string_attribute("content_hash", summary.content_hash);
  if (options.flip_both) out.write_string_attribute("content_hash_flipped", hash_flipped.hex_digest());
  out.commit();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  log()->info("[vae] encoded {} images ({}x{} px -> {}x{}x{} latents{}) into {} in {:.1f} s", total, side, side, z, s,
              s, options.flip_both ? ", and flipped" : "", options.output, summary.seconds);
  return summary;
}

}  // namespace difffit
