// SHA-256 of a byte stream, fed in pieces, through OpenSSL's libcrypto (its assembly with
// the CPU's SHA or AVX2 instructions): content hashes of prepared datasets and samples,
// checkpoints' payload checksums, weight files (the VAE's), run ids.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX; its header stays out of this one

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
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

// SHA-256 of a whole file's bytes, as 64 lowercase hex characters; IO errors name the file.
std::string sha256_of_file(const std::string& path);

}  // namespace difffit
