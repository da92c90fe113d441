#include "common/safetensors.h"

#include "common/atomic_file.h"
#include "common/byte_encoding.h"
#include "common/error.h"

#include <ATen/ATen.h>

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

// ---- a tiny JSON reader/writer: just what safetensors headers need ----

struct Json {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool b = false;
  std::string text;  // String: the decoded value; Number: the literal as written
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;  // in file order

  const char* type_name() const {
    static const char* const names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    return names[static_cast<int>(type)];
  }
  const Json* member(const std::string& key) const {
    for (const auto& m : members)
      if (m.first == key) return &m.second;
    return nullptr;
  }
  // A non-negative integer literal that fits 64 bits, else false.
  bool as_u64(std::uint64_t& out) const {
    if (type != Type::Number || text.empty() || text.size() > 20) return false;
    std::uint64_t v = 0;
    for (const char c : text) {
      if (c < '0' || c > '9') return false;  // no sign, fraction or exponent
      const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
      if (v > (UINT64_MAX - d) / 10) return false;
      v = v * 10 + d;
    }
    out = v;
    return true;
  }
};

class JsonParser {
 public:
  JsonParser(const std::string& s, const std::string& context) : s_(s), ctx_(context) {}

  Json parse_document() {
    Json v = value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw_data(ctx_ + ": malformed safetensors header: " + what + " at byte " + std::to_string(pos_) + " of the JSON");
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  char peek() {
    skip_ws();
    if (pos_ >= s_.size()) fail("unexpected end");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  bool literal(const char* word) {
    const std::size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Json value(int depth) {
    if (depth > 64) fail("nesting too deep");
    Json v;
    const char c = peek();
    if (c == '{') {
      v.type = Json::Type::Object;
      ++pos_;
      if (peek() == '}') {
        ++pos_;
        return v;
      }
      std::unordered_set<std::string> seen;
      for (;;) {
        if (peek() != '"') fail("expected a string key");
        std::string key = string();
        if (!seen.insert(key).second) fail("duplicate key '" + key + "'");
        expect(':');
        v.members.emplace_back(std::move(key), value(depth + 1));
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.type = Json::Type::Array;
      ++pos_;
      if (peek() == ']') {
        ++pos_;
        return v;
      }
      for (;;) {
        v.items.push_back(value(depth + 1));
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.type = Json::Type::String;
      v.text = string();
      return v;
    }
    if (literal("true") || literal("false")) {
      v.type = Json::Type::Bool;
      v.b = s_[pos_ - 1] == 'e' && s_[pos_ - 2] == 'u';  // "true" ends in "ue", "false" in "se"
      return v;
    }
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = Json::Type::Number;
      const std::size_t start = pos_;
      auto digits = [&] {
        const std::size_t d0 = pos_;
        while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
        if (pos_ == d0) fail("bad number");
      };
      if (s_[pos_] == '-') ++pos_;
      digits();
      if (pos_ < s_.size() && s_[pos_] == '.') {
        ++pos_;
        digits();
      }
      if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
        ++pos_;
        if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
        digits();
      }
      v.text = s_.substr(start, pos_ - start);
      return v;
    }
    fail(std::string("unexpected character '") + c + "'");
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }

  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // UTF-16 surrogate pair
            if (s_.compare(pos_, 2, "\\u") != 0) fail("unpaired surrogate");
            pos_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("unpaired surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  const std::string& s_;
  const std::string& ctx_;
  std::size_t pos_ = 0;
};

// JSON string literal; UTF-8 passes through, control characters are escaped.
std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
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
  if (j.type != Json::Type::Object) bad(std::string("entry is ") + j.type_name() + ", expected an object");
  TensorInfo t{name, at::kFloat, {}, 0, 0};

  const Json* dtype = j.member("dtype");
  if (dtype == nullptr || dtype->type != Json::Type::String) bad("field 'dtype' is missing or not a string");
  bool known = false;
  for (const auto& d : kDtypes)
    if (dtype->text == d.code) t.dtype = d.dtype, known = true;
  if (!known) bad("field 'dtype': unsupported dtype '" + dtype->text + "'");

  const Json* shape = j.member("shape");
  if (shape == nullptr || shape->type != Json::Type::Array) bad("field 'shape' is missing or not an array");
  std::uint64_t numel = 1;
  for (const Json& d : shape->items) {
    std::uint64_t v = 0;
    if (!d.as_u64(v) || v > static_cast<std::uint64_t>(INT64_MAX)) bad("field 'shape' holds a non-integer or negative value");
    if (v != 0 && numel > UINT64_MAX / 8 / v) bad("field 'shape' is too large");
    numel *= v;
    t.shape.push_back(static_cast<std::int64_t>(v));
  }

  const Json* offs = j.member("data_offsets");
  if (offs == nullptr || offs->type != Json::Type::Array || offs->items.size() != 2 ||
      !offs->items[0].as_u64(t.begin) || !offs->items[1].as_u64(t.end))
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

StateDict load_safetensors(const std::string& path, TensorFileMetadata* metadata) {
  Fd fd(path, O_RDONLY);
  if (fd.get() < 0) throw_io(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_io(path + ": cannot stat: " + std::strerror(errno));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < 8) throw_data(path + ": not a safetensors file: only " + std::to_string(size) + " bytes");

  unsigned char len_bytes[8];
  if (!pread_all(fd.get(), len_bytes, 8, 0, path)) throw_data(path + ": truncated safetensors file");
  std::uint64_t header_len = 0;
  for (int k = 7; k >= 0; --k) header_len = (header_len << 8) | len_bytes[k];
  if (header_len > kMaxHeaderSize)
    throw_data(path + ": not a safetensors file: header length " + std::to_string(header_len) + " is implausible");
  if (header_len > size - 8)
    throw_data(path + ": truncated safetensors file: header of " + std::to_string(header_len) +
               " bytes does not fit in " + std::to_string(size) + " bytes");
  std::string header(static_cast<std::size_t>(header_len), '\0');
  if (!pread_all(fd.get(), header.data(), header.size(), 8, path)) throw_data(path + ": truncated safetensors header");

  const Json root = JsonParser(header, path).parse_document();
  if (root.type != Json::Type::Object)
    throw_data(path + ": malformed safetensors header: top level is " + root.type_name() + ", expected an object");

  const std::uint64_t data_start = 8 + header_len;
  const std::uint64_t data_size = size - data_start;
  std::vector<TensorInfo> infos;
  for (const auto& m : root.members) {
    if (m.first == "__metadata__") {
      if (m.second.type != Json::Type::Object)
        throw_data(path + ": malformed safetensors header: field '__metadata__' is " + m.second.type_name() +
                   ", expected an object");
      for (const auto& kv : m.second.members) {
        if (kv.second.type != Json::Type::String)
          throw_data(path + ": malformed safetensors header: '__metadata__' field '" + kv.first + "' is " +
                     kv.second.type_name() + ", expected a string");
        if (metadata != nullptr) (*metadata)[kv.first] = kv.second.text;
      }
      continue;
    }
    infos.push_back(parse_tensor_entry(path, m.first, m.second));
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
  // Header first: dtype codes and offsets in name order (StateDict is sorted).
  std::vector<at::Tensor> data;
  std::string json = "{";
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    bool first = true;
    for (const auto& kv : metadata) {
      json += (first ? "" : ",") + json_quote(kv.first) + ":" + json_quote(kv.second);
      first = false;
    }
    json += "}";
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
    if (json.size() > 1) json += ",";
    json += json_quote(kv.first) + ":{\"dtype\":\"" + code + "\",\"shape\":[";
    for (std::size_t d = 0; d < static_cast<std::size_t>(t.dim()); ++d)
      json += (d ? "," : "") + std::to_string(t.size(static_cast<std::int64_t>(d)));
    json += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
    data.push_back(std::move(t));
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');  // 8 + header length stays 8-byte aligned

  const std::string tmp = path + ".tmp";
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
