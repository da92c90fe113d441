#include "common/torch_checkpoint.h"

#include "common/byte_encoding.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/pickle_reader.h"
#include "common/zip_archive.h"

#include <ATen/ATen.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <fstream>
#include <optional>
#include <unordered_map>
#include <unordered_set>

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

// The legacy (pre-1.6) format's first pickle: torch.serialization's MAGIC_NUMBER
// 0x1950a86a20f9469cfc6c as a little-endian LONG1 payload.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);

class CheckpointReader {
 public:
  // Zip format (torch >= 1.6).
  explicit CheckpointReader(const std::string& path) : path_(path), zip_(std::make_unique<ZipArchive>(path)) {
    for (const auto& e : zip_->entries()) {
      const std::size_t slash = e.name.find('/');
      if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
        prefix_ = e.name.substr(0, slash + 1);
        break;
      }
    }
    if (prefix_.empty()) {
      std::string names;
      for (std::size_t k = 0; k < zip_->entries().size() && k < 8; ++k) names += " '" + zip_->entries()[k].name + "'";
      throw_data(path_ + ": not a torch.save checkpoint: no <archive>/data.pkl entry (entries:" +
                 (names.empty() ? std::string(" none") : names) + ")");
    }
    if (const ZipEntry* bo = zip_->find(prefix_ + "byteorder")) {
      const ZipEntryData d = zip_->read(*bo);
      if (std::string(reinterpret_cast<const char*>(d.data), d.size) != "little")
        throw_data(path_ + ": big-endian checkpoints are not supported");
    }
  }

  // Legacy format (torch < 1.6): a sequence of pickles (magic number, protocol
  // version, system info, the object, the storage keys) followed by each storage
  // as an int64 element count and its raw bytes, in the order of the key list.
  struct Legacy {};
  CheckpointReader(const std::string& path, Legacy) : path_(path), file_(std::make_unique<MappedFile>(path)) {
    const std::uint8_t* p = file_->data();
    const std::size_t size = file_->size();
    std::size_t pos = 0;
    auto next = [&](const char* what) {
      std::size_t used = 0;
      PickleValuePtr v = read_pickle(p + pos, size - pos, path_ + ": legacy " + what, &used);
      pos += used;
      return v;
    };
    const PickleValuePtr magic = next("magic number");
    if (!magic->is(Kind::BigInt) || magic->str != kLegacyMagic)
      throw_data(path_ + ": not a torch.save file (legacy magic number missing)");
    const PickleValuePtr protocol = next("protocol version");
    if (!protocol->is(Kind::Int) || protocol->i != 1001)
      throw_data(path_ + ": unsupported legacy protocol version " + protocol->describe());
    const PickleValuePtr sys_info = next("system info");
    if (PickleValuePtr le = sys_info->get("little_endian"); le && le->is(Kind::Bool) && !le->b)
      throw_data(path_ + ": big-endian checkpoints are not supported");
    legacy_root_ = next("object");
    const PickleValuePtr keys = next("storage keys");
    if (!keys->is(Kind::List)) throw_data(path_ + ": legacy storage key list is " + keys->describe());
    for (const auto& k : keys->items) {
      if (!k->is_string()) throw_data(path_ + ": legacy storage key is " + k->describe());
      std::int64_t numel = 0;
      if (size - pos < 8) throw_data(path_ + ": truncated before storage '" + k->str + "'");
      std::memcpy(&numel, p + pos, 8);
      pos += 8;
      if (numel < 0) throw_data(path_ + ": storage '" + k->str + "' has a negative size");
      // The element size comes from the persistent id; keep the start and count for now.
      legacy_records_[k->str] = {pos, static_cast<std::uint64_t>(numel)};
      const std::uint64_t esize = legacy_element_size(k->str);
      if (esize == 0) throw_data(path_ + ": storage '" + k->str + "' is listed but never used");
      if (static_cast<std::uint64_t>(numel) > (size - pos) / esize)
        throw_data(path_ + ": truncated storage '" + k->str + "' (" + std::to_string(numel) + " elements of " +
                   std::to_string(esize) + " bytes)");
      pos += static_cast<std::size_t>(numel) * esize;
    }
  }

  PickleValuePtr root() {
    if (!zip_) return legacy_root_;
    const std::string name = prefix_ + "data.pkl";
    const ZipEntryData d = zip_->read(*zip_->find(name));
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
    std::int64_t numel_override = -1;

    ZipEntryData d;
    std::string rec = prefix_ + "data/" + key;
    if (zip_) {
      const ZipEntry* e = zip_->find(rec);
      if (e == nullptr) fail(where, "missing storage record '" + rec + "'");
      d = zip_->read(*e);
    } else {
      rec = "storage " + key;
      const auto r = legacy_records_.find(key);
      if (r == legacy_records_.end()) fail(where, "missing " + rec);
      const std::uint64_t esize = c10::elementSize(*dtype);
      d.data = file_->data() + r->second.offset;
      d.size = static_cast<std::size_t>(r->second.numel * esize);
      // A storage view: ('storage', type, root key, location, numel, (view key, offset, size)).
      if (pid.items.size() >= 6 && pid.items[5]->is(Kind::Tuple) && pid.items[5]->items.size() >= 3) {
        const std::int64_t off = int_arg(*pid.items[5]->items[1], where, "storage view offset");
        const std::int64_t len = int_arg(*pid.items[5]->items[2], where, "storage view size");
        if (off < 0 || len < 0 || static_cast<std::uint64_t>(off + len) > r->second.numel)
          fail(where, "storage view outside " + rec);
        d.data += off * esize;
        d.size = static_cast<std::size_t>(len * esize);
        numel_override = len;
      }
    }
    const std::int64_t want = numel_override >= 0 ? numel_override : numel;
    const std::uint64_t need = static_cast<std::uint64_t>(want) * c10::elementSize(*dtype);
    if (d.size < need)
      fail(where, "storage record '" + rec + "' has " + std::to_string(d.size) + " bytes, expected " + std::to_string(need));
    Storage s;
    s.data = d.data;
    s.nbytes = static_cast<std::size_t>(need);
    s.dtype = *dtype;
    s.owner = d.owned;
    return storages_.emplace(key, std::move(s)).first->second;
  }

  // Element size of a legacy storage, from the first persistent id naming it (0 if none).
  std::uint64_t legacy_element_size(const std::string& key) {
    if (!storage_types_collected_) collect_storage_types(*legacy_root_);
    const auto it = legacy_sizes_.find(key);
    return it == legacy_sizes_.end() ? 0 : it->second;
  }
  // One walk over the object, in depth-first order, each object once: the pickle memo lets
  // objects be shared (a list holding the same list twice, nested 60 deep, is 674 bytes and
  // 2^60 paths), so the walk is linear in the input only when it follows objects, not paths.
  void collect_storage_types(const PickleValue& root) {
    storage_types_collected_ = true;
    std::unordered_set<const PickleValue*> seen;
    std::vector<const PickleValue*> todo = {&root};
    while (!todo.empty()) {
      const PickleValue& v = *todo.back();
      todo.pop_back();
      if (!seen.insert(&v).second) continue;
      if (v.is(Kind::PersistentId) && v.pid && v.pid->is(Kind::Tuple) && v.pid->items.size() >= 3 &&
          v.pid->items[1]->is(Kind::Global) && v.pid->items[2]->is_string()) {
        for (const auto& s : kStorageNames)
          if (v.pid->items[1]->name == s.name) legacy_sizes_.emplace(v.pid->items[2]->str, c10::elementSize(s.dtype));
      }
      // Pushed last to first, so they are visited first to last.
      for (const auto* c : {&v.callable, &v.state, &v.args})
        if (*c) todo.push_back(c->get());
      for (auto kv = v.entries.rbegin(); kv != v.entries.rend(); ++kv) {
        if (kv->second) todo.push_back(kv->second.get());
        if (kv->first) todo.push_back(kv->first.get());
      }
      for (auto c = v.items.rbegin(); c != v.items.rend(); ++c)
        if (*c) todo.push_back(c->get());
    }
  }

  struct LegacyRecord {
    std::size_t offset = 0;    // first byte of the storage in the file
    std::uint64_t numel = 0;   // elements
  };

  std::string path_;
  std::unique_ptr<ZipArchive> zip_;      // zip format
  std::unique_ptr<MappedFile> file_;     // legacy format
  PickleValuePtr legacy_root_;
  std::unordered_map<std::string, LegacyRecord> legacy_records_;
  std::unordered_map<std::string, std::uint64_t> legacy_sizes_;
  bool storage_types_collected_ = false;  // walked once, also when it found none
  std::string prefix_;  // "archive/"
  std::unordered_map<std::string, Storage> storages_;
  std::unordered_map<const PickleValue*, at::Tensor> cache_;
};

// ---- writing ----

using Bytes = LittleEndianBytes;

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

}  // namespace

bool is_zip_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, 4)) return false;
  return std::memcmp(magic, "PK\x03\x04", 4) == 0 || std::memcmp(magic, "PK\x05\x06", 4) == 0;
}

bool is_legacy_torch_file(const std::string& path) {
  // Protocol-2 pickle of the magic number: PROTO 2, LONG1 10, then the 10 bytes.
  std::ifstream in(path, std::ios::binary);
  char head[14] = {};
  if (!in.read(head, sizeof head)) return false;
  return static_cast<unsigned char>(head[0]) == 0x80 && static_cast<unsigned char>(head[2]) == 0x8a &&
         head[3] == 10 && std::memcmp(head + 4, kLegacyMagic.data(), 10) == 0;
}

StateDict load_torch_checkpoint(const std::string& path, const std::string& select) {
  check_input_file(path, "a PyTorch checkpoint");
  const bool legacy = !is_zip_file(path) && is_legacy_torch_file(path);
  if (!legacy && !is_zip_file(path)) {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw_io(path + ": cannot open: " + std::strerror(errno));
    throw_data(path + ": not a zip file nor a legacy (pre-1.6) torch.save file");
  }
  try {
    CheckpointReader reader = legacy ? CheckpointReader(path, CheckpointReader::Legacy{}) : CheckpointReader(path);
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

  write_zip_atomically(path, [&](ZipWriter& zip) {
    zip.add("archive/data.pkl", pk.bytes().data(), pk.bytes().size());
    zip.add("archive/byteorder", "little", 6);
    for (std::size_t k = 0; k < data.size(); ++k)
      zip.add("archive/data/" + std::to_string(k), data[k].data_ptr(), data[k].numel() * data[k].element_size());
    zip.add("archive/version", "3\n", 2);
  });
}

}  // namespace difffit
