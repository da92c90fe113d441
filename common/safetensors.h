// safetensors files: an 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}},
// then the raw little-endian tensor bytes.
#pragma once

#include "common/state_dict.h"

#include <string>

namespace difffit {

// Loads all tensors as owned, contiguous CPU tensors; the "__metadata__" map
// goes to *metadata when given. Throws difffit::Error (Data) naming the file
// and, for a malformed header, the tensor and field.
StateDict load_safetensors(const std::string& path, TensorFileMetadata* metadata = nullptr);

// The "__metadata__" map alone (reads the header only).
TensorFileMetadata read_safetensors_metadata(const std::string& path);

// Writes tensors (sorted by name, 8-byte aligned data) plus optional metadata.
// Atomic: writes path + ".tmp", fsyncs it, then renames.
void save_safetensors(const std::string& path, const StateDict& tensors, const TensorFileMetadata& metadata = {});

// Cheap check of the header framing (length fits the file, JSON object starts).
bool is_safetensors_file(const std::string& path);

}  // namespace difffit
