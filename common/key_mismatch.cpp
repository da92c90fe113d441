#include "common/key_mismatch.h"

#include <ATen/ATen.h>
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <sstream>

namespace difffit {
namespace {

void append_list(std::ostringstream& out, const char* title, const std::vector<std::string>& items) {
  if (items.empty()) return;
  out << "\n  " << title << " (" << items.size() << "):";
  const size_t shown = std::min<size_t>(items.size(), 20);
  for (size_t i = 0; i < shown; ++i) out << "\n    " << items[i];
  if (items.size() > shown) out << "\n    ... and " << items.size() - shown << " more";
}

}  // namespace

std::string KeyMismatch::describe() const {
  std::ostringstream out;
  append_list(out, "missing keys", missing);
  append_list(out, "unexpected keys", unexpected);
  append_list(out, "wrong shapes", mismatched);
  append_list(out, "not floating point", wrong_types);
  return out.str();
}

bool note_if_not_floating(KeyMismatch& keys, const std::string& name, const at::Tensor& file_tensor) {
  if (at::isFloatingType(file_tensor.scalar_type())) return false;
  keys.wrong_types.push_back(name + ": file " + std::string(c10::toString(file_tensor.scalar_type())));
  return true;
}

std::string shape_string(const at::Tensor& tensor) { return c10::str(tensor.sizes()); }

}  // namespace difffit
