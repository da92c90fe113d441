// What a weight file and a model disagree on, key by key, for error messages that
// name every missing, unexpected and wrongly shaped tensor (the first 20 of each).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace difffit {

struct KeyMismatch {
  std::vector<std::string> missing;     // "name [shape]" expected by the model, absent from the file
  std::vector<std::string> unexpected;  // "name [shape]" in the file, unknown to the model
  std::vector<std::string> mismatched;  // "name: file [a], model [b]"
  std::vector<std::string> wrong_types;  // "name: file Int": the model's tensor is floating point
  bool empty() const { return missing.empty() && unexpected.empty() && mismatched.empty() && wrong_types.empty(); }
  // The lists as indented lines, to follow a one-line summary.
  std::string describe() const;
};

// True, and the name noted in wrong_types, when the file's tensor is not floating point
// (the model's are; copy_ would convert integers silently).
bool note_if_not_floating(KeyMismatch& keys, const std::string& name, const at::Tensor& file_tensor);

std::string shape_string(const at::Tensor& tensor);  // "[2, 3]"

}  // namespace difffit
