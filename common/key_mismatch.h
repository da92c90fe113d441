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
  bool empty() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // The three lists as indented lines, to follow a one-line summary.
  std::string describe() const;
};

std::string shape_string(const at::Tensor& tensor);  // "[2, 3]"

}  // namespace difffit
