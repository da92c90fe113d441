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

// Well-formed UTF-8 (RFC 3629): no stray continuation bytes, truncated or overlong sequences,
// surrogates (U+D800-DFFF) or code points above U+10FFFF.
inline bool valid_utf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
    if (c < 0x80) extra = 0;
    else if (c >= 0xC2 && c <= 0xDF) extra = 1;
    else if (c >= 0xE0 && c <= 0xEF) extra = 2, low = c == 0xE0 ? 0xA0 : 0x80, high = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) extra = 3, low = c == 0xF0 ? 0x90 : 0x80, high = c == 0xF4 ? 0x8F : 0xBF;
    else return false;
    if (extra > 0 && i + extra >= text.size()) return false;  // truncated
    for (size_t k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if (k == 1 ? (b < low || b > high) : (b & 0xC0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

// `text` with each byte that does not start a well-formed sequence (as valid_utf8 judges
// one) replaced by U+FFFD.
inline std::string utf8_or_replaced(const std::string& text) {
  if (valid_utf8(text)) return text;
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t length = 0;  // of the well-formed sequence starting at i; 0: none does
    for (size_t n = 1; n <= 4 && i + n <= text.size() && length == 0; ++n)
      if (valid_utf8(text.substr(i, n))) length = n;
    out += length ? text.substr(i, length) : "\xEF\xBF\xBD";
    i += length ? length : 1;
  }
  return out;
}

}  // namespace difffit
