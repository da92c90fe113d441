// Loads a state dict from any supported file, chosen by content (not by suffix):
// official PyTorch `.pt` (zip format or the legacy pre-1.6 format) or safetensors.
#pragma once

#include <cstdint>
#include <string>

#include "common/state_dict.h"

namespace difffit {

// `select` picks the sub-dict of a training checkpoint ("auto": ema, then model).
StateDict load_state_dict_file(const std::string& path, const std::string& select = "auto",
                               TensorFileMetadata* metadata = nullptr);

// The integer metadata entry `key` of file `path`; missing or not an integer is a data error
// naming both.
int64_t metadata_int(const TensorFileMetadata& metadata, const std::string& key, const std::string& path);

}  // namespace difffit
