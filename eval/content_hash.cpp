#include "eval/content_hash.h"

#include <cstddef>

#include "common/input_file.h"

namespace difffit {

std::string hash_file(const std::string& path) {
  ContentHash hash;
  read_file_chunks(path, "a file to hash", [&](const char* data, std::size_t n) { hash.bytes(data, n); });
  return hash.hex();
}

}  // namespace difffit
