// A fine-tuned result stored as its trainable tensors only (a "delta"), on top of
// a base checkpoint; and the fold of linear deltas into a plain DiT state dict.
#pragma once

#include <string>

#include "common/state_dict.h"
#include "worker/model/dit.h"
#include "worker/model/method_config.h"

namespace difffit {

struct DeltaInfo {
  DiTConfig model;
  MethodConfig method;
  TensorFileMetadata metadata;  // everything stored in the file, extra keys included
};

// Writes every trainable tensor (requires_grad) of `model` as safetensors with the
// model and method configs in the metadata. `extra` adds keys (run id, step, ...).
void save_delta(const std::string& path, const DiTImpl& model, const MethodConfig& method,
                const TensorFileMetadata& extra = {});

DeltaInfo read_delta_info(const std::string& path);

// `model` holds the base weights (no method applied yet): applies the delta's method
// and loads its tensors. Errors name the file and any missing/unexpected tensor.
DeltaInfo load_delta(const std::string& path, DiTImpl& model);

// A plain DiT state dict (reference keys only) computing what the fine-tuned model
// computes: gamma and LoRA are folded into the weights. Throws for methods that add
// non-linear parts (VPT prompts, adapters).
StateDict merge_to_plain_state_dict(const DiTImpl& model);

}  // namespace difffit
