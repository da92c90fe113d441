// A fast 64-bit content hash (word-wise FNV-1a with a final avalanche) for cache
// keys: datasets, weight files, training settings. Not a cryptographic hash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace difffit {

class ContentHash {
 public:
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h_ = (h_ ^ w) * 0x100000001b3ull;
    }
    for (; i < n; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ull;
    h_ = (h_ ^ n) * 0x100000001b3ull;  // length-delimited, so "ab"+"c" != "a"+"bc"
  }
  void value(int64_t v) { bytes(&v, sizeof v); }
  void text(const std::string& s) { bytes(s.data(), s.size()); }
  std::string hex() const {
    uint64_t x = h_;
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33, x *= 0xc4ceb9fe1a85ec53ull, x ^= x >> 33;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
    return buf;
  }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

// Hash of a whole file's bytes (read in chunks); throws difffit::Error (IO) if unreadable.
std::string hash_file(const std::string& path);

}  // namespace difffit
