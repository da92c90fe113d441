// JSON text that never throws on a string that is not UTF-8 (a path or an error message
// from the file system): invalid bytes become U+FFFD. Header-only; works with any nlohmann
// json type. Names that must survive JSON and HDF5 unchanged are checked with valid_utf8.
#pragma once

#include <string>

namespace difffit {

template <typename Json>
std::string json_text(const Json& value, int indent = -1) {
  return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

// Well-formed UTF-8 (no stray continuation bytes, truncated sequences, 0xC0/0xC1 or > U+10FFFF leads).
inline bool valid_utf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t extra = c < 0x80 ? 0 : (c >= 0xC2 && c <= 0xDF) ? 1 : (c >= 0xE0 && c <= 0xEF) ? 2
                         : (c >= 0xF0 && c <= 0xF4)               ? 3
                                                                  : 4;
    if (extra == 4 || (extra > 0 && i + extra >= text.size())) return false;
    for (size_t k = 1; k <= extra; ++k)
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
    i += extra + 1;
  }
  return true;
}

}  // namespace difffit
