#include "common/state_dict_file.h"

#include "common/error.h"
#include "common/input_file.h"
#include "common/number_format.h"
#include "common/safetensors.h"
#include "common/torch_checkpoint.h"

namespace difffit {

StateDict load_state_dict_file(const std::string& path, const std::string& select,
                               TensorFileMetadata* metadata) {
  check_input_file(path, "a checkpoint file");  // a pipe or device would block the probes below
  if (is_zip_file(path) || is_legacy_torch_file(path)) return load_torch_checkpoint(path, select);
  if (is_safetensors_file(path)) return load_safetensors(path, metadata);
  throw_data(path + ": not a PyTorch checkpoint (zip or legacy format) nor a safetensors file");
}

int64_t metadata_int(const TensorFileMetadata& metadata, const std::string& key, const std::string& path) {
  const auto it = metadata.find(key);
  if (it == metadata.end()) throw_data(path + ": metadata '" + key + "' missing");
  const std::string& text = it->second;
  int64_t value = 0;
  if (!parse_whole(text, value)) {
    throw_data(path + ": metadata '" + key + "' is '" + text + "', not an integer");
  }
  return value;
}

}  // namespace difffit
