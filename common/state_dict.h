// A state dict: tensor name -> tensor, ordered by name. Light header (no full torch).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace difffit {

using StateDict = std::map<std::string, at::Tensor>;
// Free-form string metadata stored beside tensors (safetensors "__metadata__").
using TensorFileMetadata = std::map<std::string, std::string>;

}  // namespace difffit
