#include "eval/content_hash.h"

#include <cstdio>
#include <vector>

#include "common/error.h"
#include "common/input_file.h"

namespace difffit {

std::string hash_file(const std::string& path) {
  check_input_file(path, "a file to hash");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw_io(path + ": cannot open for hashing");
  ContentHash hash;
  std::vector<char> buffer(size_t{8} << 20);
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), f)) > 0) hash.bytes(buffer.data(), n);
  std::fclose(f);
  return hash.hex();
}

}  // namespace difffit
