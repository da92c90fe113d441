#include "common/number_format.h"

#include <charconv>

namespace difffit {

std::string shortest_double(double value) {
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, result.ptr);
}

}  // namespace difffit
