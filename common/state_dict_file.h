// Loads a state dict from any supported file, chosen by content (not by suffix):
// official PyTorch `.pt` (zip format or the legacy pre-1.6 format) or safetensors.
#pragma once

#include <string>

#include "common/state_dict.h"

namespace difffit {

// `select` picks the sub-dict of a training checkpoint ("auto": ema, then model).
StateDict load_state_dict_file(const std::string& path, const std::string& select = "auto",
                               TensorFileMetadata* metadata = nullptr);

}  // namespace difffit
