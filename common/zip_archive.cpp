#include "common/zip_archive.h"

#include "common/atomic_file.h"
#include "common/byte_encoding.h"

#include "common/error.h"
#include "common/input_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <sstream>

namespace difffit {

namespace {

constexpr std::uint32_t kLocalHeaderSig = 0x04034b50;
constexpr std::uint32_t kCentralHeaderSig = 0x02014b50;
constexpr std::uint32_t kEndSig = 0x06054b50;
constexpr std::uint32_t kZip64EndSig = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSig = 0x07064b50;
constexpr std::size_t kEndSize = 22;
constexpr std::size_t kZip64EndSize = 56;
constexpr std::size_t kZip64LocatorSize = 20;
constexpr std::size_t kCentralHeaderSize = 46;
constexpr std::size_t kLocalHeaderSize = 30;

// Little-endian field readers; callers check bounds first.
std::uint16_t rd16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
std::uint32_t rd32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint64_t rd64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(rd32(p)) | (static_cast<std::uint64_t>(rd32(p + 4)) << 32);
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw_data(path + ": corrupt or truncated zip archive: " + what);
}

// Fills 0xFFFFFFFF placeholders of a central-directory entry from its ZIP64
// extra field (id 0x0001), whose values appear in a fixed order.
void apply_zip64_extra(const std::string& path, ZipEntry& e, const std::uint8_t* extra,
                       std::size_t extra_len, bool need_usize, bool need_csize, bool need_offset) {
  std::size_t pos = 0;
  while (pos + 4 <= extra_len) {
    const std::uint16_t id = rd16(extra + pos);
    const std::uint16_t len = rd16(extra + pos + 2);
    if (pos + 4 + len > extra_len) corrupt(path, "extra field overruns entry '" + e.name + "'");
    if (id == 0x0001) {
      const std::uint8_t* f = extra + pos + 4;
      std::size_t used = 0;
      auto take = [&](std::uint64_t& out) {
        if (used + 8 > len) corrupt(path, "ZIP64 extra field too short for entry '" + e.name + "'");
        out = rd64(f + used);
        used += 8;
      };
      if (need_usize) take(e.uncompressed_size);
      if (need_csize) take(e.compressed_size);
      if (need_offset) take(e.local_header_offset);
      return;
    }
    pos += 4 + len;
  }
  corrupt(path, "entry '" + e.name + "' needs a ZIP64 extra field but has none");
}

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  check_input_file(path, "a regular file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_io(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw_io(path + ": cannot stat: " + std::strerror(err));
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {  // mmap of length 0 fails; an empty file is just an empty view
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw_io(path + ": cannot mmap: " + std::strerror(err));
    }
    data_ = static_cast<const std::uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::uint8_t*>(data_), size_);
}

std::uint32_t zip_crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc) {
  uLong c = crc;
  // zlib's crc32 takes a uInt length; feed large buffers in chunks.
  while (size > 0) {
    const std::size_t n = std::min<std::size_t>(size, 1u << 30);
    c = ::crc32(c, data, static_cast<uInt>(n));
    data += n;
    size -= n;
  }
  return static_cast<std::uint32_t>(c);
}

ZipArchive::ZipArchive(const std::string& path) : file_(path) {
  const std::uint8_t* base = file_.data();
  const std::size_t size = file_.size();
  if (size < kEndSize) corrupt(path, "file too small (" + std::to_string(size) + " bytes)");

  // The end-of-central-directory record sits at the end, before an optional comment.
  std::size_t eocd = SIZE_MAX;
  const std::size_t lowest = size > kEndSize + 0xFFFF ? size - kEndSize - 0xFFFF : 0;
  for (std::size_t pos = size - kEndSize + 1; pos-- > lowest;) {
    if (rd32(base + pos) == kEndSig && pos + kEndSize + rd16(base + pos + 20) <= size) {
      eocd = pos;
      break;
    }
  }
  if (eocd == SIZE_MAX) corrupt(path, "no end-of-central-directory record");

  const std::uint8_t* e = base + eocd;
  if (rd16(e + 4) != 0 || rd16(e + 6) != 0) throw_data(path + ": multi-disk zip archives are not supported");
  std::uint64_t count = rd16(e + 10);
  std::uint64_t cd_size = rd32(e + 12);
  std::uint64_t cd_offset = rd32(e + 16);
  std::size_t cd_end = eocd;  // where the central directory must end (for prepended data)

  // ZIP64: a locator right before the EOCD points at the 64-bit record.
  if (eocd >= kZip64LocatorSize && rd32(base + eocd - kZip64LocatorSize) == kZip64LocatorSig) {
    const std::uint8_t* loc = base + eocd - kZip64LocatorSize;
    std::uint64_t rec = rd64(loc + 8);
    if (size < kZip64EndSize || rec > size - kZip64EndSize || rd32(base + rec) != kZip64EndSig) {
      // The offset is relative to the zip start; with prepended data, use the
      // record that normally sits directly before the locator.
      if (eocd < kZip64LocatorSize + kZip64EndSize) corrupt(path, "bad ZIP64 end-of-central-directory locator");
      rec = eocd - kZip64LocatorSize - kZip64EndSize;
      if (rd32(base + rec) != kZip64EndSig) corrupt(path, "ZIP64 end-of-central-directory record not found");
    }
    const std::uint8_t* z = base + rec;
    if (rd32(z + 16) != 0 || rd32(z + 20) != 0) throw_data(path + ": multi-disk zip archives are not supported");
    count = rd64(z + 32);
    cd_size = rd64(z + 40);
    cd_offset = rd64(z + 48);
    cd_end = rec;
  }

  if (cd_size > cd_end || cd_offset > cd_end - cd_size)
    corrupt(path, "central directory lies outside the file");
  const std::size_t cd_start = cd_end - cd_size;
  const std::uint64_t prefix = cd_start - cd_offset;  // bytes prepended before the zip data
  if (count > cd_size / kCentralHeaderSize) corrupt(path, "entry count does not fit the central directory");

  entries_.reserve(count);
  std::size_t pos = cd_start;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (pos + kCentralHeaderSize > cd_end || rd32(base + pos) != kCentralHeaderSig)
      corrupt(path, "bad central directory entry #" + std::to_string(i));
    const std::uint8_t* h = base + pos;
    const std::size_t name_len = rd16(h + 28), extra_len = rd16(h + 30), comment_len = rd16(h + 32);
    if (pos + kCentralHeaderSize + name_len + extra_len + comment_len > cd_end)
      corrupt(path, "central directory entry #" + std::to_string(i) + " overruns the directory");
    ZipEntry ent;
    ent.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_len);
    if (rd16(h + 8) & 0x1) throw_data(path + ": entry '" + ent.name + "' is encrypted (not supported)");
    ent.method = rd16(h + 10);
    ent.crc32 = rd32(h + 16);
    ent.compressed_size = rd32(h + 20);
    ent.uncompressed_size = rd32(h + 24);
    ent.local_header_offset = rd32(h + 42);
    const bool need_u = ent.uncompressed_size == 0xFFFFFFFFu;
    const bool need_c = ent.compressed_size == 0xFFFFFFFFu;
    const bool need_o = ent.local_header_offset == 0xFFFFFFFFu;
    if (need_u || need_c || need_o)
      apply_zip64_extra(path, ent, h + kCentralHeaderSize + name_len, extra_len, need_u, need_c, need_o);

    // The data starts after the local header, whose extra field (alignment
    // padding in PyTorch files) may differ from the central one.
    const std::uint64_t lho = prefix + ent.local_header_offset;
    if (lho > size || size - lho < kLocalHeaderSize || rd32(base + lho) != kLocalHeaderSig)
      corrupt(path, "bad local header for entry '" + ent.name + "'");
    ent.data_offset = lho + kLocalHeaderSize + rd16(base + lho + 26) + rd16(base + lho + 28);
    if (ent.data_offset > size || size - ent.data_offset < ent.compressed_size)
      corrupt(path, "entry '" + ent.name + "' extends past the end of the file");

    index_[ent.name] = entries_.size();
    entries_.push_back(std::move(ent));
    pos += kCentralHeaderSize + name_len + extra_len + comment_len;
  }
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

ZipEntryData ZipArchive::read(const ZipEntry& entry, bool verify_crc) const {
  const std::string& p = path();
  const std::uint8_t* src = file_.data() + entry.data_offset;
  ZipEntryData out;
  if (entry.method == 0) {
    if (entry.compressed_size != entry.uncompressed_size)
      corrupt(p, "stored entry '" + entry.name + "' has different compressed and uncompressed sizes");
    out.data = src;
    out.size = entry.uncompressed_size;
  } else if (entry.method == 8) {
    // Deflate expands at most ~1032:1; a larger claim means a corrupt header.
    if (entry.uncompressed_size > kMaxInflatedEntryBytes)
      throw_data(p + ": compressed entry '" + entry.name + "' declares " + std::to_string(entry.uncompressed_size) +
                 " bytes uncompressed, over the limit of " + std::to_string(kMaxInflatedEntryBytes >> 20) +
                 " MiB for compressed entries (refused before inflating)");
    if (entry.uncompressed_size / 1032 > entry.compressed_size + 1024)
      corrupt(p, "implausible uncompressed size for entry '" + entry.name + "'");
    out.owned = std::make_shared<std::vector<std::uint8_t>>(entry.uncompressed_size);
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw_io(p + ": zlib inflateInit2 failed");
    std::uint64_t in_left = entry.compressed_size, out_left = entry.uncompressed_size;
    std::uint8_t dummy = 0;  // zlib rejects a null output pointer, even for empty output
    zs.next_in = const_cast<Bytef*>(src);
    zs.next_out = out.owned->empty() ? &dummy : out.owned->data();
    int rc = Z_OK;
    while (rc == Z_OK) {
      if (zs.avail_in == 0 && in_left > 0) {
        zs.avail_in = static_cast<uInt>(std::min<std::uint64_t>(in_left, UINT_MAX));
        in_left -= zs.avail_in;
      }
      if (zs.avail_out == 0 && out_left > 0) {
        zs.avail_out = static_cast<uInt>(std::min<std::uint64_t>(out_left, UINT_MAX));
        out_left -= zs.avail_out;
      }
      // Both buffers are refilled above, so Z_BUF_ERROR means input or output ran out.
      rc = inflate(&zs, Z_NO_FLUSH);
    }
    // The output buffer holds the declared size: inflating stops there whatever the data say.
    const std::uint64_t produced = zs.total_out;
    const bool overflows = rc == Z_BUF_ERROR && zs.avail_out == 0 && out_left == 0;
    const std::string zmsg = zs.msg != nullptr ? std::string(": ") + zs.msg : std::string();
    inflateEnd(&zs);
    if (overflows)
      corrupt(p, "entry '" + entry.name + "' inflates to more than the " + std::to_string(entry.uncompressed_size) +
                     " bytes its header declares (inflating stopped there)");
    if (rc != Z_STREAM_END || produced != entry.uncompressed_size)
      corrupt(p, "cannot inflate entry '" + entry.name + "'" + zmsg);
    out.data = out.owned->data();
    out.size = out.owned->size();
    verify_crc = true;  // already paid for the decompression; the check is cheap
  } else {
    throw_data(p + ": entry '" + entry.name + "' uses unsupported compression method " +
               std::to_string(entry.method));
  }
  if (verify_crc && zip_crc32(out.data, out.size) != entry.crc32)
    corrupt(p, "CRC-32 mismatch in entry '" + entry.name + "'");
  return out;
}

using ZipBytes = LittleEndianBytes;

void ZipWriter::add(const std::string& name, const void* data, std::size_t size) {
  Entry e{name, zip_crc32(static_cast<const std::uint8_t*>(data), size), size, offset_};
  ZipBytes h;
  h.u32(0x04034b50);
  h.u16(45), h.u16(0), h.u16(0);  // version needed (ZIP64), flags, method stored
  h.u16(0), h.u16(0x21);          // time, date (1980-01-01)
  h.u32(e.crc);
  h.u32(0xFFFFFFFFu), h.u32(0xFFFFFFFFu);  // sizes in the ZIP64 extra
  const std::size_t zip64_len = 4 + 16;
  std::size_t unpadded = offset_ + 30 + name.size() + zip64_len;
  std::size_t pad = (64 - unpadded % 64) % 64;
  if (pad > 0 && pad < 4) pad += 64;  // the padding field needs its own 4-byte header
  h.u16(static_cast<std::uint16_t>(name.size()));
  h.u16(static_cast<std::uint16_t>(zip64_len + pad));
  h.raw(name);
  h.u16(0x0001), h.u16(16), h.u64(size), h.u64(size);
  if (pad > 0) {
    h.u16(0x4246), h.u16(static_cast<std::uint16_t>(pad - 4));  // "FB" padding field, like PyTorch
    h.raw(std::string(pad - 4, 'Z'));
  }
  write(h.s.data(), h.s.size());
  write(data, size);
  entries_.push_back(std::move(e));
}

void ZipWriter::finish() {
  const std::uint64_t cd_offset = offset_;
  ZipBytes cd;
  for (const Entry& e : entries_) {
    cd.u32(0x02014b50);
    cd.u16(45), cd.u16(45), cd.u16(0), cd.u16(0);  // made by, needed, flags, method
    cd.u16(0), cd.u16(0x21);
    cd.u32(e.crc);
    cd.u32(0xFFFFFFFFu), cd.u32(0xFFFFFFFFu);
    cd.u16(static_cast<std::uint16_t>(e.name.size()));
    cd.u16(4 + 24), cd.u16(0);      // extra length, comment length
    cd.u16(0), cd.u16(0), cd.u32(0);  // disk, internal and external attributes
    cd.u32(0xFFFFFFFFu);             // local header offset in the ZIP64 extra
    cd.raw(e.name);
    cd.u16(0x0001), cd.u16(24), cd.u64(e.size), cd.u64(e.size), cd.u64(e.offset);
  }
  const std::uint64_t cd_size = cd.s.size();
  const std::uint64_t n = entries_.size();
  const std::uint64_t zip64_end = cd_offset + cd_size;
  ZipBytes t;
  t.u32(0x06064b50), t.u64(44), t.u16(45), t.u16(45), t.u32(0), t.u32(0);
  t.u64(n), t.u64(n), t.u64(cd_size), t.u64(cd_offset);
  t.u32(0x07064b50), t.u32(0), t.u64(zip64_end), t.u32(1);
  auto sat16 = [](std::uint64_t v) { return static_cast<std::uint16_t>(v < 0xFFFF ? v : 0xFFFF); };
  auto sat32 = [](std::uint64_t v) { return static_cast<std::uint32_t>(v < 0xFFFFFFFFu ? v : 0xFFFFFFFFu); };
  t.u32(0x06054b50), t.u16(0), t.u16(0), t.u16(sat16(n)), t.u16(sat16(n));
  t.u32(sat32(cd_size)), t.u32(sat32(cd_offset)), t.u16(0);
  write(cd.s.data(), cd.s.size());
  write(t.s.data(), t.s.size());
}

void ZipWriter::write(const void* p, std::size_t n) {
  if (n > 0 && std::fwrite(p, 1, n, f_) != n) throw_io(path_ + ": write failed: " + std::strerror(errno));
  offset_ += n;
}

void write_zip_atomically(const std::string& path, const std::function<void(ZipWriter&)>& fill) {
  const std::string tmp = temporary_path_for(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) throw_io(tmp + ": cannot create: " + std::strerror(errno));
  try {
    ZipWriter zip(f, tmp);
    fill(zip);
    zip.finish();
    if (std::fflush(f) != 0) throw_io(tmp + ": write failed: " + std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    throw_io(tmp + ": close failed: " + std::strerror(errno));
  }
  commit_file(tmp, path);
}

}  // namespace difffit
