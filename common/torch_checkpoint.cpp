#include "common/torch_checkpoint.h"

#include "common/error.h"
#include "common/pickle_reader.h"
#include "common/zip_archive.h"

#include <ATen/ATen.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <fstream>
#include <optional>
#include <unordered_map>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor files are read and written as little-endian; a big-endian host needs byte swapping"
#endif

namespace difffit {

namespace {

using Kind = PickleValue::Kind;

// Legacy typed-storage class names (what torch.save writes in persistent ids).
struct StorageName {
  const char* name;
  at::ScalarType dtype;
};
constexpr StorageName kStorageNames[] = {
    {"FloatStorage", at::kFloat},   {"DoubleStorage", at::kDouble},
    {"HalfStorage", at::kHalf},     {"BFloat16Storage", at::kBFloat16},
    {"LongStorage", at::kLong},     {"IntStorage", at::kInt},
    {"ShortStorage", at::kShort},   {"CharStorage", at::kChar},
    {"ByteStorage", at::kByte},     {"BoolStorage", at::kBool},
    {"ComplexFloatStorage", at::kComplexFloat}, {"ComplexDoubleStorage", at::kComplexDouble},
    {"UntypedStorage", at::kByte},  // torch 2.x: raw bytes, dtype given by _rebuild_tensor_v3
};

// torch.<dtype> globals, as pickled by torch 2.x (_rebuild_tensor_v3).
struct DtypeName {
  const char* name;
  at::ScalarType dtype;
};
constexpr DtypeName kDtypeNames[] = {
    {"float32", at::kFloat}, {"float", at::kFloat},     {"float64", at::kDouble},
    {"double", at::kDouble}, {"float16", at::kHalf},    {"half", at::kHalf},
    {"bfloat16", at::kBFloat16}, {"int64", at::kLong},  {"long", at::kLong},
    {"int32", at::kInt},     {"int", at::kInt},         {"int16", at::kShort},
    {"short", at::kShort},   {"int8", at::kChar},       {"uint8", at::kByte},
    {"bool", at::kBool},     {"complex64", at::kComplexFloat}, {"complex128", at::kComplexDouble},
};

const char* storage_name_for(at::ScalarType t) {
  for (const auto& s : kStorageNames)
    if (s.dtype == t && std::strcmp(s.name, "UntypedStorage") != 0) return s.name;
  return nullptr;
}

// "'a', 'b', ..." for error messages; long lists are cut short.
std::string key_list(const PickleValue& dict) {
  constexpr std::size_t kMax = 40;
  std::string out;
  for (std::size_t k = 0; k < dict.entries.size() && k < kMax; ++k) {
    const PickleValue& key = *dict.entries[k].first;
    if (!out.empty()) out += ", ";
    out += key.is_string() ? "'" + key.str + "'" : key.describe();
  }
  if (dict.entries.size() > kMax) out += ", ... (" + std::to_string(dict.entries.size() - kMax) + " more)";
  return out.empty() ? "(none)" : out;
}

// A storage record mapped as raw bytes of its dtype; `owner` keeps copies alive.
struct Storage {
  const std::uint8_t* data = nullptr;
  std::size_t nbytes = 0;
  at::ScalarType dtype = at::kByte;
  std::shared_ptr<void> owner;
};

class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path) : path_(path), zip_(path) {
    for (const auto& e : zip_.entries()) {
      const std::size_t slash = e.name.find('/');
      if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
        prefix_ = e.name.substr(0, slash + 1);
        break;
      }
    }
    if (prefix_.empty()) {
      std::string names;
      for (std::size_t k = 0; k < zip_.entries().size() && k < 8; ++k) names += " '" + zip_.entries()[k].name + "'";
      throw_data(path_ + ": not a torch.save checkpoint: no <archive>/data.pkl entry (entries:" +
                 (names.empty() ? std::string(" none") : names) + ")");
    }
    if (const ZipEntry* bo = zip_.find(prefix_ + "byteorder")) {
      const ZipEntryData d = zip_.read(*bo);
      if (std::string(reinterpret_cast<const char*>(d.data), d.size) != "little")
        throw_data(path_ + ": big-endian checkpoints are not supported");
    }
  }

  PickleValuePtr root() {
    const std::string name = prefix_ + "data.pkl";
    const ZipEntryData d = zip_.read(*zip_.find(name));
    return read_pickle(d.data, d.size, path_ + ": " + name);
  }

  // Dict entries of a dict or OrderedDict (whose BUILD `_metadata` state is ignored); nullptr otherwise.
  static const PickleValue* as_dict(const PickleValuePtr& v) {
    if (!v) return nullptr;
    if (v->is(Kind::Dict)) return v.get();
    if (v->is(Kind::Object) && v->qualified_name() == "collections.OrderedDict") return v.get();
    return nullptr;
  }

  static bool is_tensor(const PickleValuePtr& v) {
    if (!v || !v->is(Kind::Object)) return false;
    const std::string fn = v->qualified_name();
    return fn.rfind("torch._utils._rebuild_", 0) == 0 || fn == "torch._tensor._rebuild_from_type_v2";
  }

  // Tensor entries of a state dict, converted; other entries are skipped.
  StateDict tensors_of(const PickleValue& dict, const std::string& where) {
    StateDict out;
    for (const auto& kv : dict.entries) {
      if (!kv.first->is_string() || !is_tensor(kv.second)) continue;
      out[kv.first->str] = tensor(kv.second, where + "'" + kv.first->str + "'");
    }
    return out;
  }

  static std::size_t count_tensors(const PickleValue& dict) {
    std::size_t n = 0;
    for (const auto& kv : dict.entries) n += is_tensor(kv.second) ? 1 : 0;
    return n;
  }

 private:
  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw_data(path_ + ": tensor " + where + ": " + what);
  }

  static const PickleValue& arg(const PickleValue& args, std::size_t k) { return *args.items[k]; }

  std::int64_t int_arg(const PickleValue& v, const std::string& where, const char* what) const {
    if (!v.is(Kind::Int)) fail(where, std::string(what) + " is " + v.describe() + ", expected an int");
    return v.i;
  }
  std::vector<std::int64_t> int_tuple(const PickleValue& v, const std::string& where, const char* what) const {
    if (!v.is(Kind::Tuple) && !v.is(Kind::List)) fail(where, std::string(what) + " is " + v.describe() + ", expected a tuple");
    std::vector<std::int64_t> out;
    for (const auto& it : v.items) {
      const std::int64_t x = int_arg(*it, where, what);
      if (x < 0) fail(where, std::string(what) + " has a negative value");
      out.push_back(x);
    }
    return out;
  }

  // Converts one rebuild call; memoised so a tensor referenced twice (tied
  // weights) is converted once and stays shared.
  at::Tensor tensor(const PickleValuePtr& v, const std::string& where) {
    const auto it = cache_.find(v.get());
    if (it != cache_.end()) return it->second;
    at::Tensor t = rebuild(v->qualified_name(), v->args, where, 0);
    cache_.emplace(v.get(), t);
    return t;
  }

  at::Tensor rebuild(const std::string& fn, const PickleValuePtr& args_ptr, const std::string& where, int depth) {
    if (depth > 8) fail(where, "tensor rebuild calls nested too deeply");
    if (!args_ptr || !args_ptr->is(Kind::Tuple)) fail(where, fn + " called without an argument tuple");
    const PickleValue& args = *args_ptr;
    const std::size_t n = args.items.size();
    auto need = [&](std::size_t k) {
      if (n < k) fail(where, fn + " needs " + std::to_string(k) + " arguments, got " + std::to_string(n));
    };
    if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
      need(4);
      return view(arg(args, 0), std::nullopt, arg(args, 1), arg(args, 2), arg(args, 3), where);
    }
    if (fn == "torch._utils._rebuild_tensor_v3") {  // (storage, offset, size, stride, grad, hooks, dtype, ...)
      need(7);
      return view(arg(args, 0), dtype_of(arg(args, 6), where), arg(args, 1), arg(args, 2), arg(args, 3), where);
    }
    if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state") {
      need(1);  // (tensor, requires_grad, backward_hooks[, state]): the data is all we keep
      if (!is_tensor(args.items[0])) fail(where, "parameter data is " + args.items[0]->describe());
      return rebuild(args.items[0]->qualified_name(), args.items[0]->args, where, depth + 1);
    }
    if (fn == "torch._tensor._rebuild_from_type_v2") {  // (func, subclass, func_args, state)
      need(3);
      if (!args.items[0]->is(Kind::Global)) fail(where, "bad _rebuild_from_type_v2 call");
      return rebuild(args.items[0]->qualified_name(), args.items[2], where, depth + 1);
    }
    fail(where, "unsupported tensor kind (rebuilt by " + fn + ")");
  }

  at::ScalarType dtype_of(const PickleValue& g, const std::string& where) const {
    if (g.is(Kind::Global) && g.module == "torch")
      for (const auto& d : kDtypeNames)
        if (g.name == d.name) return d.dtype;
    fail(where, "unsupported dtype " + g.describe());
  }

  // as_strided over the storage, then an owned contiguous copy.
  at::Tensor view(const PickleValue& storage_pid, std::optional<at::ScalarType> dtype, const PickleValue& offset_v,
                  const PickleValue& size_v, const PickleValue& stride_v, const std::string& where) {
    const Storage& st = storage(storage_pid, where);
    const at::ScalarType dt = dtype.value_or(st.dtype);
    const std::int64_t esize = static_cast<std::int64_t>(c10::elementSize(dt));
    const std::int64_t offset = int_arg(offset_v, where, "storage offset");
    const std::vector<std::int64_t> size = int_tuple(size_v, where, "size");
    const std::vector<std::int64_t> stride = int_tuple(stride_v, where, "stride");
    if (size.size() != stride.size()) fail(where, "size and stride have different lengths");
    if (offset < 0) fail(where, "negative storage offset");
    const std::int64_t avail = static_cast<std::int64_t>(st.nbytes) / esize;

    // Bounds check in the file's terms (as_strided would only say "out of bounds").
    std::int64_t last = offset;  // highest element index touched
    bool empty = false;
    for (std::size_t d = 0; d < size.size(); ++d) {
      if (size[d] == 0) empty = true;
      else if (stride[d] > 0 && (size[d] - 1) > (INT64_MAX - last) / stride[d]) fail(where, "size/stride overflow");
      else last += (size[d] - 1) * stride[d];
    }
    if (!empty && last >= avail)
      fail(where, "view (offset " + std::to_string(offset) + ", last element " + std::to_string(last) +
                      ") exceeds its storage of " + std::to_string(avail) + " elements");
    if (empty) return at::empty(size, at::TensorOptions().dtype(dt));

    // from_blob needs element alignment; unaligned records (e.g. re-zipped files) are copied first.
    const std::uint8_t* base = st.data;
    std::vector<std::int64_t> aligned;
    if (reinterpret_cast<std::uintptr_t>(base) % static_cast<std::uintptr_t>(esize) != 0) {
      aligned.resize((st.nbytes + 7) / 8);
      std::memcpy(aligned.data(), base, st.nbytes);
      base = reinterpret_cast<const std::uint8_t*>(aligned.data());
    }
    // The blob is only read (the clone copies out of it) while `st` and `aligned` are alive.
    const at::Tensor flat = at::from_blob(const_cast<std::uint8_t*>(base), {avail}, at::TensorOptions().dtype(dt));
    return flat.as_strided(size, stride, offset).clone(at::MemoryFormat::Contiguous);
  }

  // Resolves ('storage', <type>, key, location, numel) to the record archive/data/<key>.
  const Storage& storage(const PickleValue& pid_v, const std::string& where) {
    if (!pid_v.is(Kind::PersistentId) || !pid_v.pid) fail(where, "storage argument is " + pid_v.describe());
    const PickleValue& pid = *pid_v.pid;
    if (!pid.is(Kind::Tuple) || pid.items.size() < 5 || !pid.items[0]->is_string() || pid.items[0]->str != "storage")
      fail(where, "unsupported persistent id " + pid.describe());
    const PickleValue& type = *pid.items[1];
    const PickleValue& key_v = *pid.items[2];
    const std::string key = key_v.is_string() ? key_v.str : key_v.is(Kind::Int) ? std::to_string(key_v.i) : "";
    if (key.empty()) fail(where, "bad storage key " + key_v.describe());
    const auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;

    std::optional<at::ScalarType> dtype;
    if (type.is(Kind::Global) && (type.module == "torch" || type.module == "torch.cuda" || type.module == "torch.storage"))
      for (const auto& s : kStorageNames)
        if (type.name == s.name) dtype = s.dtype;
    if (!dtype) fail(where, "unsupported storage type " + type.qualified_name());
    const std::int64_t numel = int_arg(*pid.items[4], where, "storage size");
    if (numel < 0) fail(where, "negative storage size");

    const std::string rec = prefix_ + "data/" + key;
    const ZipEntry* e = zip_.find(rec);
    if (e == nullptr) fail(where, "missing storage record '" + rec + "'");
    ZipEntryData d = zip_.read(*e);
    const std::uint64_t need = static_cast<std::uint64_t>(numel) * c10::elementSize(*dtype);
    if (d.size < need)
      fail(where, "storage record '" + rec + "' has " + std::to_string(d.size) + " bytes, expected " + std::to_string(need));
    Storage s;
    s.data = d.data;
    s.nbytes = static_cast<std::size_t>(need);
    s.dtype = *dtype;
    s.owner = d.owned;
    return storages_.emplace(key, std::move(s)).first->second;
  }

  std::string path_;
  ZipArchive zip_;
  std::string prefix_;  // "archive/"
  std::unordered_map<std::string, Storage> storages_;
  std::unordered_map<const PickleValue*, at::Tensor> cache_;
};

// ---- writing ----

// Appends little-endian integers / bytes to a buffer.
struct Bytes {
  std::string s;
  void u8(std::uint8_t v) { s += static_cast<char>(v); }
  void u16(std::uint16_t v) { u8(v & 0xFF), u8(v >> 8); }
  void u32(std::uint32_t v) { u16(v & 0xFFFF), u16(v >> 16); }
  void u64(std::uint64_t v) { u32(v & 0xFFFFFFFFu), u32(static_cast<std::uint32_t>(v >> 32)); }
  void raw(const std::string& b) { s += b; }
};

// Minimal protocol-2 pickle writer for an OrderedDict of tensors, laid out as torch.save does.
class PickleWriter {
 public:
  PickleWriter() { b_.u8(0x80), b_.u8(2); }
  void global(const char* module, const char* name) {
    b_.u8('c');
    b_.raw(std::string(module) + "\n" + name + "\n");
  }
  void str(const std::string& v) {
    b_.u8('X');
    b_.u32(static_cast<std::uint32_t>(v.size()));
    b_.raw(v);
  }
  void integer(std::int64_t v) {
    if (v >= 0 && v < 256) {
      b_.u8('K'), b_.u8(static_cast<std::uint8_t>(v));
    } else if (v >= 0 && v < 65536) {
      b_.u8('M'), b_.u16(static_cast<std::uint16_t>(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      b_.u8('J'), b_.u32(static_cast<std::uint32_t>(v));
    } else {
      b_.u8(0x8a), b_.u8(8), b_.u64(static_cast<std::uint64_t>(v));  // LONG1, 8 bytes two's complement
    }
  }
  void int_tuple(const std::vector<std::int64_t>& v) {
    op('(');
    for (const std::int64_t x : v) integer(x);
    op('t');
  }
  void op(char c) { b_.u8(static_cast<std::uint8_t>(c)); }
  void empty_ordered_dict() {
    global("collections", "OrderedDict");
    op(')'), op('R');
  }
  const std::string& bytes() const { return b_.s; }

 private:
  Bytes b_;
};

// Writes stored (uncompressed) entries with data aligned to 64 bytes, as
// PyTorch does (it allows mmap-ing records). Sizes and offsets always go in
// ZIP64 extra fields so files over 4 GiB need no special path.
class ZipWriter {
 public:
  ZipWriter(std::FILE* f, const std::string& path) : f_(f), path_(path) {}

  void add(const std::string& name, const void* data, std::size_t size) {
    Entry e{name, zip_crc32(static_cast<const std::uint8_t*>(data), size), size, offset_};
    Bytes h;
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

  void finish() {
    const std::uint64_t cd_offset = offset_;
    Bytes cd;
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
    Bytes t;
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

 private:
  struct Entry {
    std::string name;
    std::uint32_t crc;
    std::uint64_t size;
    std::uint64_t offset;
  };
  void write(const void* p, std::size_t n) {
    if (n > 0 && std::fwrite(p, 1, n, f_) != n) throw_io(path_ + ": write failed: " + std::strerror(errno));
    offset_ += n;
  }
  std::FILE* f_;
  std::string path_;
  std::uint64_t offset_ = 0;
  std::vector<Entry> entries_;
};

// Directory part of a path, for fsync after rename.
std::string parent_dir(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

bool is_zip_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, 4)) return false;
  return std::memcmp(magic, "PK\x03\x04", 4) == 0 || std::memcmp(magic, "PK\x05\x06", 4) == 0;
}

StateDict load_torch_checkpoint(const std::string& path, const std::string& select) {
  if (!is_zip_file(path)) {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw_io(path + ": cannot open: " + std::strerror(errno));
    throw_data(path + ": not a zip file (only torch.save files written by torch >= 1.6 are supported)");
  }
  try {
    CheckpointReader reader(path);
    const PickleValuePtr root = reader.root();
    const PickleValue* top = CheckpointReader::as_dict(root);
    if (top == nullptr)
      throw_data(path + ": top-level object is " + root->describe() + ", expected a dict of tensors");

    if (select != "auto") {
      PickleValuePtr sub = top->get(select);
      if (!sub) throw_data(path + ": key '" + select + "' not found; keys: " + key_list(*top));
      const PickleValue* d = CheckpointReader::as_dict(sub);
      if (d == nullptr) throw_data(path + ": '" + select + "' is " + sub->describe() + ", not a dict of tensors");
      if (!d->entries.empty() && CheckpointReader::count_tensors(*d) == 0)
        throw_data(path + ": '" + select + "' holds no tensors; its keys: " + key_list(*d));
      return reader.tensors_of(*d, "'" + select + "'/");
    }
    // A training dict: the first of these that holds tensors wins.
    for (const char* key : {"ema", "model", "state_dict"}) {
      const PickleValue* d = CheckpointReader::as_dict(top->get(key));
      if (d != nullptr && CheckpointReader::count_tensors(*d) > 0) return reader.tensors_of(*d, std::string("'") + key + "'/");
    }
    if (!top->entries.empty() && CheckpointReader::count_tensors(*top) == 0)
      throw_data(path + ": no tensors at the top level and no 'ema', 'model' or 'state_dict' dict of tensors; keys: " +
                 key_list(*top));
    return reader.tensors_of(*top, "");
  } catch (const c10::Error& e) {
    throw_data(path + ": " + e.what_without_backtrace());
  }
}

void save_torch_state_dict(const std::string& path, const StateDict& tensors) {
  // Contiguous CPU copies with conj/neg views resolved, so the bytes are the values.
  std::vector<at::Tensor> data;
  PickleWriter pk;
  pk.empty_ordered_dict();
  if (!tensors.empty()) pk.op('(');
  for (const auto& kv : tensors) {
    const at::Tensor& src = kv.second;
    if (!src.defined()) throw_data(path + ": tensor '" + kv.first + "' is undefined");
    if (src.layout() != at::kStrided) throw_data(path + ": tensor '" + kv.first + "' is not dense (sparse or other layout)");
    const char* storage = storage_name_for(src.scalar_type());
    if (storage == nullptr)
      throw_data(path + ": tensor '" + kv.first + "' has unsupported dtype " + std::string(c10::toString(src.scalar_type())));
    at::Tensor t = src.to(at::kCPU).resolve_conj().resolve_neg().contiguous();
    std::vector<std::int64_t> size(t.sizes().begin(), t.sizes().end());
    std::vector<std::int64_t> stride(size.size());
    std::int64_t s = 1;  // canonical row-major strides (contiguous() may keep odd strides of size-1 dims)
    for (std::size_t d = size.size(); d-- > 0;) {
      stride[d] = s;
      s *= size[d];
    }
    pk.str(kv.first);
    pk.global("torch._utils", "_rebuild_tensor_v2");
    pk.op('(');
    pk.op('(');
    pk.str("storage");
    pk.global("torch", storage);
    pk.str(std::to_string(data.size()));
    pk.str("cpu");
    pk.integer(t.numel());
    pk.op('t');
    pk.op('Q');  // BINPERSID
    pk.integer(0);
    pk.int_tuple(size);
    pk.int_tuple(stride);
    pk.op('\x89');  // requires_grad = False
    pk.empty_ordered_dict();  // backward hooks
    pk.op('t');
    pk.op('R');
    data.push_back(std::move(t));
  }
  if (!tensors.empty()) pk.op('u');
  pk.op('.');

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) throw_io(tmp + ": cannot create: " + std::strerror(errno));
  try {
    ZipWriter zip(f, tmp);
    zip.add("archive/data.pkl", pk.bytes().data(), pk.bytes().size());
    zip.add("archive/byteorder", "little", 6);
    for (std::size_t k = 0; k < data.size(); ++k)
      zip.add("archive/data/" + std::to_string(k), data[k].data_ptr(), data[k].numel() * data[k].element_size());
    zip.add("archive/version", "3\n", 2);
    zip.finish();
    if (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0) throw_io(tmp + ": flush failed: " + std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    throw_io(tmp + ": close failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw_io(path + ": cannot rename from " + tmp + ": " + std::strerror(err));
  }
  // Make the rename itself durable.
  const int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace difffit
