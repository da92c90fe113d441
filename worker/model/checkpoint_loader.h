// Loads a plain DiT state dict (official checkpoint, safetensors, merged delta)
// into a DiT, reporting every missing, unexpected or wrongly-shaped key by name.
#pragma once

#include <string>
#include <vector>

#include "common/state_dict.h"
#include "worker/model/dit.h"

namespace difffit {

struct LoadOptions {
  // pos_embed is fixed sin-cos: when the checkpoint's grid differs from the model's (or a
  // coordinate scale is set) it is recomputed instead of loaded.
  bool rebuild_pos_embed = true;
  // A checkpoint with another class count gets a fresh class table (normal(0.02)), as
  // fine-tuning to a new dataset needs; off by default so a wrong --num-classes is caught.
  bool reinit_class_table = false;
  std::string select = "auto";  // sub-dict of a training checkpoint: auto | ema | model | ...
};

struct LoadReport {
  size_t loaded = 0;                    // tensors copied from the checkpoint
  std::vector<std::string> rebuilt;     // computed instead of loaded (pos_embed)
  std::vector<std::string> reinitialised;  // freshly initialised (class table)
};

// Copies `state` into the model's reference-named parameters. Throws a data error that
// lists missing, unexpected and mismatched keys (with shapes), naming `source`.
LoadReport load_dit_state_dict(DiTImpl& model, const StateDict& state, const LoadOptions& options,
                               const std::string& source);

// Reads the file (by content: .pt zip or safetensors) and loads it.
LoadReport load_dit_checkpoint(DiTImpl& model, const std::string& path, const LoadOptions& options = {});

// The model's reference-named tensors (no fine-tuning additions), detached.
StateDict dit_reference_state_dict(const DiTImpl& model);

}  // namespace difffit
