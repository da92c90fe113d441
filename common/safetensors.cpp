#include "common/safetensors.h"

#include "common/atomic_file.h"
#include "common/byte_encoding.h"
#include "common/error.h"
#include "common/input_file.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <unordered_set>
#include <utility>
#include <vector>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; a big-endian host needs byte swapping"
#endif

namespace difffit {

namespace {

// Same cap as the reference implementation: a larger header means a corrupt file.
constexpr std::uint64_t kMaxHeaderSize = 100'000'000;

struct DtypeCode {
  const char* code;
  at::ScalarType dtype;
};
constexpr DtypeCode kDtypes[] = {
    {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"F64", at::kDouble},
    {"I64", at::kLong},  {"I32", at::kInt},  {"I16", at::kShort},     {"I8", at::kChar},
    {"U8", at::kByte},   {"BOOL", at::kBool},
};

// ---- the header: JSON through nlohmann, with the checks safetensors needs ----

// Read into nlohmann::json (keys in a std::map: a crafted header with many keys stays
// n log n; entries are ordered by their offsets anyway); written from ordered_json, so the
// header keeps the reference's order: __metadata__, then tensors by name.
using Json = nlohmann::json;

const char* type_name(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    default: return "a number";
  }
}

// A non-negative integer that fits 64 bits (no sign, fraction or exponent), else false.
bool as_u64(const Json& j, std::uint64_t& out) {
  if (!j.is_number_unsigned()) return false;
  out = j.get<std::uint64_t>();
  return true;
}

// Parses the header; a syntax error or a key repeated within one object is a data error.
Json parse_header(const std::string& text, const std::string& path) {
  std::vector<std::unordered_set<std::string>> keys;  // one set per open object
  std::string duplicate;
  const Json::parser_callback_t check = [&](int, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) keys.emplace_back();
    if (event == Json::parse_event_t::object_end) keys.pop_back();
    if (event == Json::parse_event_t::key && !keys.back().insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  try {
    Json root = Json::parse(text, check);
    if (!duplicate.empty()) throw_data(path + ": malformed safetensors header: duplicate key '" + duplicate + "'");
    return root;
  } catch (const Json::parse_error& e) {
    throw_data(path + ": malformed safetensors header: " + e.what());
  }
}

// ---- file helpers ----

class Fd {
 public:
  Fd(const std::string& path, int flags, mode_t mode = 0) : fd_(::open(path.c_str(), flags | O_CLOEXEC, mode)) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

// Reads exactly n bytes at `offset`; false on a short file.
bool pread_all(int fd, void* buf, std::size_t n, std::uint64_t offset, const std::string& path) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, std::min<std::size_t>(n, 1u << 30), static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_io(path + ": read failed: " + std::strerror(errno));
    }
    if (r == 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
    offset += static_cast<std::uint64_t>(r);
  }
  return true;
}

void write_all(int fd, const void* buf, std::size_t n, const std::string& path) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<std::size_t>(n, 1u << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_io(path + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

struct TensorInfo {
  std::string name;
  at::ScalarType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;
};

[[noreturn]] void bad_entry(const std::string& path, const std::string& name, const std::string& what) {
  throw_data(path + ": malformed safetensors header: tensor '" + name + "': " + what);
}

// Validates one tensor entry of the header.
TensorInfo parse_tensor_entry(const std::string& path, const std::string& name, const Json& j) {
  auto bad = [&](const std::string& what) { bad_entry(path, name, what); };
  if (!j.is_object()) bad(std::string("entry is ") + type_name(j) + ", expected an object");
  TensorInfo t{name, at::kFloat, {}, 0, 0};

  const auto dtype = j.find("dtype");
  if (dtype == j.end() || !dtype->is_string()) bad("field 'dtype' is missing or not a string");
  const std::string code = dtype->get<std::string>();
  bool known = false;
  for (const auto& d : kDtypes)
    if (code == d.code) t.dtype = d.dtype, known = true;
  if (!known) bad("field 'dtype': unsupported dtype '" + code + "'");

  const auto shape = j.find("shape");
  if (shape == j.end() || !shape->is_array()) bad("field 'shape' is missing or not an array");
  std::uint64_t numel = 1;
  for (const Json& d : *shape) {
    std::uint64_t v = 0;
    if (!as_u64(d, v) || v > static_cast<std::uint64_t>(INT64_MAX)) bad("field 'shape' holds a non-integer or negative value");
    if (v != 0 && numel > UINT64_MAX / 8 / v) bad("field 'shape' is too large");
    numel *= v;
    t.shape.push_back(static_cast<std::int64_t>(v));
  }

  const auto offs = j.find("data_offsets");
  if (offs == j.end() || !offs->is_array() || offs->size() != 2 || !as_u64((*offs)[0], t.begin) ||
      !as_u64((*offs)[1], t.end))
    bad("field 'data_offsets' must be an array of two non-negative integers");
  if (t.end < t.begin) bad("field 'data_offsets' has end before begin");
  const std::uint64_t nbytes = numel * c10::elementSize(t.dtype);
  if (t.end - t.begin != nbytes)
    bad("field 'data_offsets' spans " + std::to_string(t.end - t.begin) + " bytes but dtype and shape need " +
        std::to_string(nbytes));
  return t;
}

}  // namespace

bool is_safetensors_file(const std::string& path) {
  Fd fd(path, O_RDONLY);
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) return false;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  unsigned char head[9];
  if (size < sizeof head) return false;
  try {
    if (!pread_all(fd.get(), head, sizeof head, 0, path)) return false;
  } catch (const Error&) {
    return false;
  }
  std::uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | head[k];
  return n >= 2 && n <= kMaxHeaderSize && n <= size - 8 && head[8] == '{';
}

namespace {

struct Header {
  Json root;                 // the parsed JSON object
  std::uint64_t length = 0;  // its size in bytes (data starts at 8 + length)
  std::uint64_t file_size = 0;
};

// Reads and parses the header of an open file, with every framing check.
Header read_header(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_io(path + ": cannot stat: " + std::strerror(errno));
  Header h;
  h.file_size = static_cast<std::uint64_t>(st.st_size);
  if (h.file_size < 8) throw_data(path + ": not a safetensors file: only " + std::to_string(h.file_size) + " bytes");
  unsigned char len_bytes[8];
  if (!pread_all(fd, len_bytes, 8, 0, path)) throw_data(path + ": truncated safetensors file");
  for (int k = 7; k >= 0; --k) h.length = (h.length << 8) | len_bytes[k];
  if (h.length > kMaxHeaderSize)
    throw_data(path + ": not a safetensors file: header length " + std::to_string(h.length) + " is implausible");
  if (h.length > h.file_size - 8)
    throw_data(path + ": truncated safetensors file: header of " + std::to_string(h.length) +
               " bytes does not fit in " + std::to_string(h.file_size) + " bytes");
  std::string text(static_cast<std::size_t>(h.length), '\0');
  if (!pread_all(fd, text.data(), text.size(), 8, path)) throw_data(path + ": truncated safetensors header");
  h.root = parse_header(text, path);
  if (!h.root.is_object())
    throw_data(path + ": malformed safetensors header: top level is " + type_name(h.root) + ", expected an object");
  return h;
}

// The "__metadata__" object: strings only.
TensorFileMetadata metadata_of(const Json& root, const std::string& path) {
  TensorFileMetadata out;
  const auto it = root.find("__metadata__");
  if (it == root.end()) return out;
  if (!it->is_object())
    throw_data(path + ": malformed safetensors header: field '__metadata__' is " + type_name(*it) +
               ", expected an object");
  for (const auto& [name, text] : it->items()) {
    if (!text.is_string())
      throw_data(path + ": malformed safetensors header: '__metadata__' field '" + name + "' is " + type_name(text) +
                 ", expected a string");
    out[name] = text.get<std::string>();
  }
  return out;
}

}  // namespace

TensorFileMetadata read_safetensors_metadata(const std::string& path) {
  check_input_file(path, "a safetensors file");
  Fd fd(path, O_RDONLY);
  if (fd.get() < 0) throw_io(path + ": cannot open: " + std::strerror(errno));
  return metadata_of(read_header(fd.get(), path).root, path);
}

StateDict load_safetensors(const std::string& path, TensorFileMetadata* metadata) {
  check_input_file(path, "a safetensors file");
  Fd fd(path, O_RDONLY);
  if (fd.get() < 0) throw_io(path + ": cannot open: " + std::strerror(errno));
  const Header h = read_header(fd.get(), path);
  const Json& root = h.root;
  const std::uint64_t header_len = h.length, size = h.file_size;
  TensorFileMetadata meta = metadata_of(root, path);
  if (metadata != nullptr) *metadata = std::move(meta);

  const std::uint64_t data_start = 8 + header_len;
  const std::uint64_t data_size = size - data_start;
  std::vector<TensorInfo> infos;
  for (const auto& [key, value] : root.items()) {
    if (key != "__metadata__") infos.push_back(parse_tensor_entry(path, key, value));
  }

  // Like the reference implementation: tensors must tile the data section exactly.
  std::sort(infos.begin(), infos.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end != b.end ? a.end < b.end : a.name < b.name;
            });
  std::uint64_t covered = 0;
  for (const TensorInfo& t : infos) {
    if (t.begin != covered)
      throw_data(path + ": malformed safetensors header: tensor '" + t.name + "': field 'data_offsets' [" +
                 std::to_string(t.begin) + ", " + std::to_string(t.end) + "] " +
                 (t.begin < covered ? "overlaps another tensor" : "leaves a gap after the previous tensor"));
    covered = t.end;
  }
  if (covered > data_size)
    throw_data(path + ": truncated safetensors file: tensors need " + std::to_string(covered) +
               " data bytes, file has " + std::to_string(data_size));
  if (covered < data_size)
    throw_data(path + ": malformed safetensors file: " + std::to_string(data_size - covered) +
               " trailing bytes not covered by any tensor");

  StateDict out;
  for (const TensorInfo& t : infos) {
    at::Tensor x = at::empty(t.shape, at::TensorOptions().dtype(t.dtype));
    const std::size_t n = static_cast<std::size_t>(t.end - t.begin);
    if (n > 0 && !pread_all(fd.get(), x.data_ptr(), n, data_start + t.begin, path))
      throw_data(path + ": truncated safetensors file while reading tensor '" + t.name + "'");
    if (t.dtype == at::kBool) {  // anything but 0/1 would be an invalid bool in torch
      const auto* b = static_cast<const std::uint8_t*>(x.data_ptr());
      for (std::size_t k = 0; k < n; ++k)
        if (b[k] > 1) throw_data(path + ": tensor '" + t.name + "': BOOL data holds a byte other than 0 or 1");
    }
    out.emplace(t.name, std::move(x));
  }
  return out;
}

void save_safetensors(const std::string& path, const StateDict& tensors, const TensorFileMetadata& metadata) {
  // Header first: metadata, then dtype codes and offsets in name order (StateDict is sorted).
  std::vector<at::Tensor> data;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json& meta = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) meta[kv.first] = kv.second;
  }
  std::uint64_t offset = 0;
  for (const auto& kv : tensors) {
    const at::Tensor& src = kv.second;
    if (kv.first == "__metadata__") throw_data(path + ": a tensor may not be named '__metadata__'");
    if (!src.defined()) throw_data(path + ": tensor '" + kv.first + "' is undefined");
    if (src.layout() != at::kStrided) throw_data(path + ": tensor '" + kv.first + "' is not dense");
    const char* code = nullptr;
    for (const auto& d : kDtypes)
      if (d.dtype == src.scalar_type()) code = d.code;
    if (code == nullptr)
      throw_data(path + ": tensor '" + kv.first + "' has dtype " + std::string(c10::toString(src.scalar_type())) +
                 ", which safetensors files here do not support");
    at::Tensor t = src.to(at::kCPU).resolve_conj().resolve_neg().contiguous();
    const std::uint64_t nbytes = static_cast<std::uint64_t>(t.numel()) * t.element_size();
    header[kv.first] = {{"dtype", code}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(std::move(t));
  }
  std::string json;
  try {
    // Compact, as the reference writes it; the same bytes as this project's earlier writer
    // (tested on the shipped model) except that \b and \f are escaped as such.
    json = header.dump();
  } catch (const nlohmann::ordered_json::type_error&) {
    throw_data(path + ": a tensor name or metadata value is not valid UTF-8");
  }
  json.append((8 - json.size() % 8) % 8, ' ');  // 8 + header length stays 8-byte aligned

  const std::string tmp = temporary_path_for(path);
  Fd fd(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd.get() < 0) throw_io(tmp + ": cannot create: " + std::strerror(errno));
  try {
    unsigned char len[8];
    for (int k = 0; k < 8; ++k) len[k] = static_cast<unsigned char>(static_cast<std::uint64_t>(json.size()) >> (8 * k));
    write_all(fd.get(), len, 8, tmp);
    write_all(fd.get(), json.data(), json.size(), tmp);
    for (const at::Tensor& t : data)
      if (t.numel() > 0) write_all(fd.get(), t.data_ptr(), static_cast<std::size_t>(t.numel()) * t.element_size(), tmp);
    if (::fsync(fd.get()) != 0) throw_io(tmp + ": fsync failed: " + std::strerror(errno));
    if (::close(fd.release()) != 0) throw_io(tmp + ": close failed: " + std::strerror(errno));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  commit_file(tmp, path);
}

}  // namespace difffit
