// SHA-256 of a byte stream, fed in pieces. Used for content hashes of prepared
// datasets (no torch, no OpenSSL dependency).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace difffit {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(const std::string& bytes) { update(bytes.data(), bytes.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  std::array<uint8_t, 32> digest();
  std::string hex_digest();  // 64 lowercase hex characters

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace difffit
