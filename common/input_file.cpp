#include "common/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <istream>
#include <vector>

#include "common/error.h"

namespace difffit {
namespace {

std::string limit_text(std::uint64_t bytes) {
  return bytes % kMiB == 0 ? std::to_string(bytes / kMiB) + " MiB" : std::to_string(bytes) + " bytes";
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a named pipe (FIFO)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// The checks on what stat or fstat found.
std::uint64_t check_stat(const struct stat& st, const std::string& path, const std::string& what,
                         std::uint64_t max_bytes) {
  if (!S_ISREG(st.st_mode)) throw_io(path + ": is " + kind_of(st.st_mode) + "; expected " + what);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes)
    throw_io(path + ": is " + std::to_string(size) + " bytes, over the " + limit_text(max_bytes) + " limit for " + what);
  return size;
}

}  // namespace

std::uint64_t check_input_file(const std::string& path, const std::string& what, std::uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_io(path + ": cannot read " + what + ": " + std::strerror(errno));
  return check_stat(st, path, what, max_bytes);
}

bool check_input_file_if_present(const std::string& path, const std::string& what, std::uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    throw_io(path + ": cannot read " + what + ": " + std::strerror(errno));
  }
  check_stat(st, path, what, max_bytes);
  return true;
}

void read_file_chunks(const std::string& path, const std::string& what,
                      const std::function<void(const char* data, std::size_t size)>& consume, std::size_t chunk_bytes) {
  check_input_file(path, what);
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) throw_io(path + ": cannot open " + what + ": " + std::strerror(errno));
  std::vector<char> buffer(std::max<std::size_t>(chunk_bytes, 1));
  std::size_t n;
  try {
    while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) consume(buffer.data(), n);
  } catch (...) {
    std::fclose(file);
    throw;
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) throw_io(path + ": read error in " + what);
}

std::string read_input_file(const std::string& path, const std::string& what, std::uint64_t max_bytes) {
  check_input_file(path, what, max_bytes);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw_io(path + ": cannot read " + what + ": " + std::strerror(errno));
  std::string text;
  try {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw_io(path + ": cannot read " + what + ": " + std::strerror(errno));
    text.reserve(check_stat(st, path, what, max_bytes));
    char buffer[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_io(path + ": cannot read " + what + ": " + std::strerror(errno));
      if (n == 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
      if (text.size() > max_bytes)  // it grew after the check
        throw_io(path + ": is over the " + limit_text(max_bytes) + " limit for " + what);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return text;
}

bool read_bounded_line(std::istream& in, std::string& line, const std::string& where, std::uint64_t max_bytes) {
  line.clear();
  std::streambuf* buffer = in.rdbuf();
  if (buffer == nullptr || !in.good()) return false;
  for (;;) {
    const int c = buffer->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return !line.empty();
    }
    if (c == '\n') return true;
    if (line.size() >= max_bytes)
      throw_data(where + ": a line longer than the " + limit_text(max_bytes) + " limit");
    line.push_back(static_cast<char>(c));
  }
}

}  // namespace difffit
