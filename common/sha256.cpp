#include "common/sha256.h"

#include <openssl/evp.h>

#include <cstddef>

#include "common/error.h"
#include "common/input_file.h"

namespace difffit {

void Sha256::Free::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw_io("SHA-256: OpenSSL cannot start a digest");
}

void Sha256::update(const void* data, size_t size) {
  if (size > 0 && EVP_DigestUpdate(ctx_.get(), data, size) != 1) throw_io("SHA-256: OpenSSL digest update failed");
}

std::array<uint8_t, 32> Sha256::digest() {
  std::array<uint8_t, 32> out{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), out.data(), &length) != 1 || length != out.size())
    throw_io("SHA-256: OpenSSL digest failed");
  return out;
}

std::string Sha256::hex_digest() {
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (uint8_t byte : digest()) {
    hex += kHex[byte >> 4];
    hex += kHex[byte & 15];
  }
  return hex;
}

std::string sha256_of_file(const std::string& path) {
  Sha256 sha;
  read_file_chunks(path, "a file to hash", [&](const char* data, std::size_t n) { sha.update(data, n); });
  return sha.hex_digest();
}

}  // namespace difffit
