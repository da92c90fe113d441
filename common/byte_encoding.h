// Small byte-level encoders shared by the file readers and writers.
#pragma once

#include <cstdint>
#include <string>

namespace difffit {

// Appends the UTF-8 encoding of code point `cp`.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A growing buffer of little-endian integers and raw bytes (zip records, pickles).
struct LittleEndianBytes {
  std::string s;
  void u8(std::uint8_t v) { s += static_cast<char>(v); }
  void u16(std::uint16_t v) { u8(v & 0xFF), u8(v >> 8); }
  void u32(std::uint32_t v) { u16(v & 0xFFFF), u16(v >> 16); }
  void u64(std::uint64_t v) { u32(v & 0xFFFFFFFFu), u32(static_cast<std::uint32_t>(v >> 32)); }
  void raw(const std::string& b) { s += b; }
};

}  // namespace difffit
