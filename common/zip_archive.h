// Read-only ZIP reader over a memory-mapped file. PyTorch's zip checkpoints
// store tensor data uncompressed, so stored entries are handed out as pointers
// into the mapping (no copy); deflated entries are inflated with zlib.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace difffit {

// A read-only mapping of a whole file. Throws difffit::Error (IO) if the file
// cannot be opened or mapped.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// The most a compressed (deflated) entry may inflate to. torch.save stores tensor data
// uncompressed (read in place, no limit); deflated entries hold a pickle or a tensor of an
// archive compressed again, far smaller. A larger claim is refused before inflating: a
// few MB of deflate data can claim gigabytes (a decompression bomb).
constexpr std::uint64_t kMaxInflatedEntryBytes = std::uint64_t{256} << 20;  // 256 MiB

struct ZipEntry {
  std::string name;
  std::uint16_t method = 0;  // 0 = stored, 8 = deflate
  std::uint32_t crc32 = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t uncompressed_size = 0;
  std::uint64_t local_header_offset = 0;  // relative to the start of the zip data
  std::uint64_t data_offset = 0;          // absolute offset of the entry's bytes in the file
};

// The bytes of one entry. `data` points either into the archive's mapping
// (stored entries; valid while the ZipArchive lives) or into `owned`.
struct ZipEntryData {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
  std::shared_ptr<std::vector<std::uint8_t>> owned;
};

class ZipArchive {
 public:
  // Maps the file and parses the central directory (ZIP64 aware). Throws
  // difffit::Error (Data) naming the file if it is not a well-formed archive.
  explicit ZipArchive(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  // nullptr if there is no entry of that exact name.
  const ZipEntry* find(const std::string& name) const;

  // Returns the entry's bytes: zero-copy for stored entries, inflated for
  // deflated ones (at most kMaxInflatedEntryBytes, and never past the size the header
  // declares). With verify_crc the CRC-32 is checked (always for deflate).
  ZipEntryData read(const ZipEntry& entry, bool verify_crc = true) const;

 private:
  MappedFile file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

// Writes a zip of stored (uncompressed) entries to an open file, data aligned to
// 64 bytes as PyTorch does (records can be mmap-ed). Sizes and offsets always go
// in ZIP64 extra fields, so files over 4 GiB need no special path. Python's
// zipfile (torch.load, numpy.load) reads the result. Throws difffit::Error (IO)
// naming `path` when a write fails; the caller owns and closes the file.
class ZipWriter {
 public:
  ZipWriter(std::FILE* f, const std::string& path) : f_(f), path_(path) {}
  void add(const std::string& name, const void* data, std::size_t size);
  void finish();  // writes the central directory

 private:
  struct Entry {
    std::string name;
    std::uint32_t crc;
    std::uint64_t size;
    std::uint64_t offset;
  };
  void write(const void* p, std::size_t n);
  std::FILE* f_;
  std::string path_;
  std::uint64_t offset_ = 0;
  std::vector<Entry> entries_;
};

// CRC-32 (zlib) of a buffer of any size.
std::uint32_t zip_crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0);

// Writes a zip file whole or not at all: `fill` adds the entries to PATH.tmp, which is
// then finished, made durable and renamed to `path` (commit_file). On any error the
// temporary file is removed and a previous file at `path` stays as it was.
void write_zip_atomically(const std::string& path, const std::function<void(ZipWriter&)>& fill);

}  // namespace difffit
