// The latent dataset file (`difffit vae encode`), read by the training loader in place
// of a prepared image file:
//   latents          float32 (N, z, s, s): posterior samples * scaling_factor of the images in [-1, 1]
//   latents_flipped  float32 (N, z, s, s), optional: the same for the horizontally flipped images
//   labels           int64 (N); class_names strings (num_classes)
//   root attributes: format_version (1), kind ("latents"), source, split, crop, description,
//     resolution (image side), latent_size (s), latent_channels (z), num_classes, num_images,
//     scaling_factor (text), vae_file, vae_sha256, vae_config, seed, flip (both | none),
//     source_content_hash (the image file's), content_hash (SHA-256 of the latents bytes then
//     the labels as little-endian int64), content_hash_flipped (of the latents_flipped bytes)
#pragma once

namespace difffit::latent_format {

inline constexpr const char* kLatents = "latents";
inline constexpr const char* kLatentsFlipped = "latents_flipped";
inline constexpr const char* kKind = "latents";

}  // namespace difffit::latent_format
