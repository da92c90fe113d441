#include "common/pickle_reader.h"

#include "common/byte_encoding.h"

#include "common/error.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

namespace difffit {

using Kind = PickleValue::Kind;

namespace {
// Moves a value's children to `out`, leaving it childless.
void detach_children(PickleValue& v, std::vector<PickleValuePtr>& out) {
  for (auto& it : v.items) out.push_back(std::move(it));
  for (auto& kv : v.entries) {
    out.push_back(std::move(kv.first));
    out.push_back(std::move(kv.second));
  }
  v.items.clear();
  v.entries.clear();
  for (PickleValuePtr* p : {&v.callable, &v.args, &v.state, &v.pid})
    if (*p) out.push_back(std::move(*p));
}
}  // namespace

PickleValue::~PickleValue() {
  std::vector<PickleValuePtr> pending;
  detach_children(*this, pending);
  while (!pending.empty()) {
    PickleValuePtr v = std::move(pending.back());
    pending.pop_back();
    // Sole owner: empty it first so its destruction below does not recurse.
    if (v && v.use_count() == 1) detach_children(*v, pending);
  }
}

PickleValuePtr PickleValue::make(Kind k) {
  auto v = std::make_shared<PickleValue>();
  v->kind = k;
  return v;
}

std::string PickleValue::qualified_name() const {
  if (kind == Kind::Global) return module + "." + name;
  if (kind == Kind::Object && callable) return callable->qualified_name();
  return {};
}

PickleValuePtr PickleValue::get(const std::string& key) const {
  for (const auto& kv : entries)
    if (kv.first && kv.first->is_string() && kv.first->str == key) return kv.second;
  return nullptr;
}

std::string PickleValue::describe() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return b ? "True" : "False";
    case Kind::Int: return "int " + std::to_string(i);
    case Kind::BigInt: return "int (" + std::to_string(str.size()) + " bytes)";
    case Kind::Float: return "float " + std::to_string(f);
    case Kind::String: return "str '" + (str.size() > 40 ? str.substr(0, 40) + "..." : str) + "'";
    case Kind::Bytes: return "bytes (" + std::to_string(str.size()) + ")";
    case Kind::List: return "list (" + std::to_string(items.size()) + " items)";
    case Kind::Tuple: return "tuple (" + std::to_string(items.size()) + " items)";
    case Kind::Set: return "set (" + std::to_string(items.size()) + " items)";
    case Kind::Dict: return "dict (" + std::to_string(entries.size()) + " entries)";
    case Kind::Global: return "global " + qualified_name();
    case Kind::Object: return "object " + qualified_name();
    case Kind::PersistentId: return "persistent id";
  }
  return "?";
}

namespace {

// Decimal digits of an INT/LONG text literal: Python's default sys.int_info.default_max_str_digits.
constexpr std::size_t kMaxDecimalDigits = 4300;

// Opcode values, named as in Python's pickletools.
enum : std::uint8_t {
  MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', FLOAT = 'F', INT = 'I',
  BININT = 'J', BININT1 = 'K', LONG = 'L', BININT2 = 'M', NONE = 'N', PERSID = 'P',
  BINPERSID = 'Q', REDUCE = 'R', STRING = 'S', BINSTRING = 'T', SHORT_BINSTRING = 'U',
  UNICODE = 'V', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c', DICT = 'd',
  EMPTY_DICT = '}', APPENDS = 'e', GET = 'g', BINGET = 'h', INST = 'i', LONG_BINGET = 'j',
  LIST = 'l', EMPTY_LIST = ']', OBJ = 'o', PUT = 'p', BINPUT = 'q', LONG_BINPUT = 'r',
  SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u', BINFLOAT = 'G',
  PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, TUPLE1 = 0x85,
  TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b,
  BINBYTES = 'B', SHORT_BINBYTES = 'C', SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90, FROZENSET = 0x91, NEWOBJ_EX = 0x92,
  STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95, BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97,
  READONLY_BUFFER = 0x98,
};

class Unpickler {
 public:
  Unpickler(const std::uint8_t* data, std::size_t size, const std::string& context)
      : p_(data), size_(size), context_(context) {}

  std::size_t position() const { return pos_; }

  PickleValuePtr run() {
    for (;;) {
      op_pos_ = pos_;
      const std::uint8_t op = u8();
      switch (op) {
        case PROTO: {
          proto_ = u8();
          if (proto_ > 5) fail("unsupported pickle protocol " + std::to_string(proto_));
          break;
        }
        case FRAME: (void)u64(); break;  // framing is only a read-ahead hint
        case STOP: {
          if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size())) fail("STOP with an empty stack");
          return stack_.back();
        }
        case MARK: marks_.push_back(stack_.size()); break;
        case POP:
          if (!marks_.empty() && marks_.back() == stack_.size()) marks_.pop_back();
          else (void)pop();
          break;
        case POP_MARK: (void)pop_mark(); break;
        case DUP: push(top()); break;

        case NONE: push(PickleValue::make(Kind::None)); break;
        case NEWTRUE: push(make_bool(true)); break;
        case NEWFALSE: push(make_bool(false)); break;
        case BININT: push(make_int(static_cast<std::int32_t>(u32()))); break;
        case BININT1: push(make_int(u8())); break;
        case BININT2: push(make_int(u16())); break;
        case LONG1: push(make_long(u8())); break;
        case LONG4: {
          const auto n = static_cast<std::int32_t>(u32());
          if (n < 0) fail("negative LONG4 length");
          push(make_long(static_cast<std::size_t>(n)));
          break;
        }
        case INT: {
          const std::string s = line();
          if (s == "00" || s == "01") push(make_bool(s == "01"));  // protocol 0 booleans
          else push(make_decimal(s));
          break;
        }
        case LONG: {
          std::string s = line();
          if (!s.empty() && s.back() == 'L') s.pop_back();
          push(make_decimal(s));
          break;
        }
        case BINFLOAT: {
          std::uint64_t bits = 0;  // big-endian IEEE double
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | u8();
          auto v = PickleValue::make(Kind::Float);
          std::memcpy(&v->f, &bits, sizeof bits);
          push(v);
          break;
        }
        case FLOAT: {
          const std::string s = line();
          char* end = nullptr;
          auto v = PickleValue::make(Kind::Float);
          v->f = std::strtod(s.c_str(), &end);
          if (end == s.c_str()) fail("bad FLOAT literal '" + s + "'");
          push(v);
          break;
        }

        case BINUNICODE: push(make_str(Kind::String, u32())); break;
        case SHORT_BINUNICODE: push(make_str(Kind::String, u8())); break;
        case BINUNICODE8: push(make_str(Kind::String, u64())); break;
        case BINSTRING: {
          const auto n = static_cast<std::int32_t>(u32());
          if (n < 0) fail("negative BINSTRING length");
          push(make_str(Kind::String, static_cast<std::uint64_t>(n)));
          break;
        }
        case SHORT_BINSTRING: push(make_str(Kind::String, u8())); break;
        case BINBYTES: push(make_str(Kind::Bytes, u32())); break;
        case SHORT_BINBYTES: push(make_str(Kind::Bytes, u8())); break;
        case BINBYTES8:
        case BYTEARRAY8: push(make_str(Kind::Bytes, u64())); break;
        case STRING: push(make_string_literal(line())); break;
        case UNICODE: push(make_raw_unicode(line())); break;

        case EMPTY_LIST: push(PickleValue::make(Kind::List)); break;
        case EMPTY_TUPLE: push(PickleValue::make(Kind::Tuple)); break;
        case EMPTY_DICT: push(PickleValue::make(Kind::Dict)); break;
        case EMPTY_SET: push(PickleValue::make(Kind::Set)); break;
        case LIST: push(make_seq(Kind::List, pop_mark())); break;
        case TUPLE: push(make_seq(Kind::Tuple, pop_mark())); break;
        case FROZENSET: push(make_seq(Kind::Set, pop_mark())); break;
        case TUPLE1:
        case TUPLE2:
        case TUPLE3: {
          const std::size_t n = op - TUPLE1 + 1;
          if (stack_size_above_mark() < n) fail("stack underflow");
          std::vector<PickleValuePtr> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(make_seq(Kind::Tuple, std::move(items)));
          break;
        }
        case DICT: {
          auto d = PickleValue::make(Kind::Dict);
          add_pairs(*d, pop_mark());
          push(d);
          break;
        }
        case APPEND: {
          auto v = pop();
          add_items(top(), {v});
          break;
        }
        case APPENDS:
        case ADDITEMS: {
          auto items = pop_mark();
          add_items(top(), std::move(items));
          break;
        }
        case SETITEM: {
          auto v = pop();
          auto k = pop();
          add_pairs(*container(top(), "SETITEM"), {k, v});
          break;
        }
        case SETITEMS: {
          auto items = pop_mark();
          add_pairs(*container(top(), "SETITEMS"), std::move(items));
          break;
        }

        case GLOBAL: {
          std::string module = line();
          std::string name = line();
          push(make_global(py3_module(std::move(module)), std::move(name)));
          break;
        }
        case STACK_GLOBAL: {
          auto name = pop();
          auto module = pop();
          if (!module->is_string() || !name->is_string()) fail("STACK_GLOBAL needs two strings");
          push(make_global(py3_module(module->str), name->str));
          break;
        }
        case REDUCE:
        case NEWOBJ: {
          auto args = pop();
          auto fn = pop();
          push(make_object(fn, args));
          break;
        }
        case NEWOBJ_EX: {
          auto kwargs = pop();
          auto args = pop();
          auto cls = pop();
          auto obj = make_object(cls, args);
          if (kwargs->is(Kind::Dict)) obj->entries = kwargs->entries;  // keyword args, if any
          push(obj);
          break;
        }
        case INST: {
          std::string module = line();
          std::string name = line();
          auto args = make_seq(Kind::Tuple, pop_mark());
          push(make_object(make_global(py3_module(std::move(module)), std::move(name)), args));
          break;
        }
        case OBJ: {
          auto items = pop_mark();
          if (items.empty()) fail("OBJ without a class");
          auto cls = items.front();
          items.erase(items.begin());
          push(make_object(cls, make_seq(Kind::Tuple, std::move(items))));
          break;
        }
        case BUILD: {
          auto st = pop();
          top()->state = st;
          break;
        }

        case BINPUT: memo_[u8()] = top(); break;
        case LONG_BINPUT: memo_[u32()] = top(); break;
        case PUT: memo_[static_cast<std::uint64_t>(parse_int(line()))] = top(); break;
        case MEMOIZE: {
          const std::uint64_t idx = memo_.size();
          memo_[idx] = top();
          break;
        }
        case BINGET: push(memo_get(u8())); break;
        case LONG_BINGET: push(memo_get(u32())); break;
        case GET: push(memo_get(static_cast<std::uint64_t>(parse_int(line())))); break;

        case BINPERSID: {
          auto v = PickleValue::make(Kind::PersistentId);
          v->pid = pop();
          push(v);
          break;
        }
        case PERSID: {
          auto v = PickleValue::make(Kind::PersistentId);
          v->pid = PickleValue::make(Kind::String);
          v->pid->str = line();
          push(v);
          break;
        }
        case READONLY_BUFFER: (void)top(); break;  // marks a buffer read-only: nothing to do
        case NEXT_BUFFER:
        case EXT1:
        case EXT2:
        case EXT4:
          fail("unsupported pickle opcode " + hex(op) + " (out-of-band buffers / extension registry)");
        default:
          fail("unknown pickle opcode " + hex(op));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw_data(context_ + ": " + what + " at offset " + std::to_string(op_pos_));
  }
  static std::string hex(std::uint8_t op) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", op);
    return buf;
  }

  // Raw input.
  const std::uint8_t* take(std::uint64_t n) {
    if (n > size_ - pos_) fail("truncated pickle (needs " + std::to_string(n) + " more bytes)");
    const std::uint8_t* r = p_ + pos_;
    pos_ += static_cast<std::size_t>(n);
    return r;
  }
  std::uint8_t u8() { return *take(1); }
  std::uint16_t u16() {
    const auto* b = take(2);
    return static_cast<std::uint16_t>(b[0] | (b[1] << 8));
  }
  std::uint32_t u32() {
    const auto* b = take(4);
    return static_cast<std::uint32_t>(b[0]) | (static_cast<std::uint32_t>(b[1]) << 8) |
           (static_cast<std::uint32_t>(b[2]) << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
  }
  std::uint64_t u64() {
    const std::uint64_t lo = u32();
    return lo | (static_cast<std::uint64_t>(u32()) << 32);
  }
  std::string line() {
    const void* nl = std::memchr(p_ + pos_, '\n', size_ - pos_);
    if (nl == nullptr) fail("truncated pickle (unterminated text argument)");
    const std::size_t n = static_cast<const std::uint8_t*>(nl) - (p_ + pos_);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n + 1;
    return s;
  }
  std::int64_t parse_int(const std::string& s) {
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (end == s.c_str() || *end != '\0' || errno == ERANGE) fail("bad or too large integer literal '" + s + "'");
    return v;
  }

  // Stack.
  void push(PickleValuePtr v) { stack_.push_back(std::move(v)); }
  std::size_t stack_size_above_mark() const { return stack_.size() - (marks_.empty() ? 0 : marks_.back()); }
  PickleValuePtr pop() {
    if (stack_size_above_mark() == 0) fail("stack underflow");
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  const PickleValuePtr& top() {
    if (stack_size_above_mark() == 0) fail("stack underflow");
    return stack_.back();
  }
  std::vector<PickleValuePtr> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PickleValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  PickleValuePtr memo_get(std::uint64_t idx) {
    const auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo key " + std::to_string(idx) + " not found");
    return it->second;
  }

  // Value builders.
  static PickleValuePtr make_bool(bool b) {
    auto v = PickleValue::make(Kind::Bool);
    v->b = b;
    return v;
  }
  static PickleValuePtr make_int(std::int64_t i) {
    auto v = PickleValue::make(Kind::Int);
    v->i = i;
    return v;
  }
  // LONG1/LONG4: little-endian two's complement of n bytes.
  PickleValuePtr make_long(std::size_t n) {
    const std::uint8_t* b = take(n);
    if (n == 0) return make_int(0);
    if (n > 8) {
      auto v = PickleValue::make(Kind::BigInt);
      v->str.assign(reinterpret_cast<const char*>(b), n);
      return v;
    }
    std::uint64_t u = 0;
    for (std::size_t k = n; k-- > 0;) u = (u << 8) | b[k];
    if (n < 8 && (b[n - 1] & 0x80)) u |= ~std::uint64_t{0} << (8 * n);  // sign-extend
    std::int64_t s;
    std::memcpy(&s, &u, sizeof s);
    return make_int(s);
  }
  // Protocol 0 decimal literal; beyond int64 it becomes a BigInt in the same
  // minimal two's complement form LONG1 uses.
  PickleValuePtr make_decimal(const std::string& s) {
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (end != s.c_str() && *end == '\0' && errno != ERANGE) return make_int(v);
    const bool neg = !s.empty() && s[0] == '-';
    const std::size_t first = (neg || (!s.empty() && s[0] == '+')) ? 1 : 0;
    if (first >= s.size()) fail("bad integer literal '" + s + "'");
    // The conversion below is quadratic in the digits; Python refuses the same text.
    if (s.size() - first > kMaxDecimalDigits)
      fail("integer literal of " + std::to_string(s.size() - first) + " digits, more than " +
           std::to_string(kMaxDecimalDigits) + " (Python's own limit for int text)");
    std::vector<std::uint8_t> mag;  // little-endian magnitude
    for (std::size_t k = first; k < s.size(); ++k) {
      if (s[k] < '0' || s[k] > '9') fail("bad integer literal '" + s + "'");
      unsigned carry = static_cast<unsigned>(s[k] - '0');
      for (auto& byte : mag) {
        const unsigned x = byte * 10u + carry;
        byte = static_cast<std::uint8_t>(x & 0xFF);
        carry = x >> 8;
      }
      if (carry != 0) mag.push_back(static_cast<std::uint8_t>(carry));
    }
    mag.push_back(0);  // room for the sign bit
    if (neg) {         // two's complement: invert and add one
      unsigned carry = 1;
      for (auto& byte : mag) {
        const unsigned x = static_cast<std::uint8_t>(~byte) + carry;
        byte = static_cast<std::uint8_t>(x & 0xFF);
        carry = x >> 8;
      }
    }
    // Drop redundant sign bytes.
    while (mag.size() > 1 && ((mag.back() == 0x00 && !(mag[mag.size() - 2] & 0x80)) ||
                              (mag.back() == 0xFF && (mag[mag.size() - 2] & 0x80))))
      mag.pop_back();
    auto v2 = PickleValue::make(Kind::BigInt);
    v2->str.assign(mag.begin(), mag.end());
    return v2;
  }
  PickleValuePtr make_str(Kind k, std::uint64_t n) {
    const std::uint8_t* b = take(n);
    auto v = PickleValue::make(k);
    v->str.assign(reinterpret_cast<const char*>(b), static_cast<std::size_t>(n));
    return v;
  }
  // Protocol 0 STRING: a quoted Python bytes literal with backslash escapes.
  PickleValuePtr make_string_literal(const std::string& s) {
    if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front())
      fail("bad STRING literal");
    auto v = PickleValue::make(Kind::String);
    for (std::size_t k = 1; k + 1 < s.size(); ++k) {
      char c = s[k];
      if (c != '\\' || k + 2 >= s.size()) {
        v->str += c;
        continue;
      }
      c = s[++k];
      switch (c) {
        case 'n': v->str += '\n'; break;
        case 't': v->str += '\t'; break;
        case 'r': v->str += '\r'; break;
        case '0': v->str += '\0'; break;
        case 'x':
          if (k + 2 >= s.size()) fail("bad \\x escape in STRING");
          v->str += static_cast<char>(std::strtol(s.substr(k + 1, 2).c_str(), nullptr, 16));
          k += 2;
          break;
        default: v->str += c;  // \\ \' \"
      }
    }
    return v;
  }
  // Protocol 0 UNICODE: raw-unicode-escape, i.e. latin-1 plus \uXXXX / \UXXXXXXXX.
  PickleValuePtr make_raw_unicode(const std::string& s) {
    auto v = PickleValue::make(Kind::String);
    for (std::size_t k = 0; k < s.size(); ++k) {
      const auto c = static_cast<unsigned char>(s[k]);
      if (c == '\\' && k + 1 < s.size() && (s[k + 1] == 'u' || s[k + 1] == 'U')) {
        const std::size_t digits = s[k + 1] == 'u' ? 4 : 8;
        if (k + 2 + digits > s.size()) fail("bad escape in UNICODE");
        append_utf8(v->str, static_cast<std::uint32_t>(std::strtoul(s.substr(k + 2, digits).c_str(), nullptr, 16)));
        k += 1 + digits;
      } else {
        append_utf8(v->str, c);
      }
    }
    return v;
  }
  static PickleValuePtr make_seq(Kind k, std::vector<PickleValuePtr> items) {
    auto v = PickleValue::make(k);
    v->items = std::move(items);
    return v;
  }
  // Protocols < 3 spell some modules the Python 2 way; map them back as
  // Python's unpickler does (fix_imports) so callers see one name.
  std::string py3_module(std::string module) const {
    if (proto_ >= 3) return module;
    if (module == "__builtin__") return "builtins";
    if (module == "copy_reg") return "copyreg";
    return module;
  }
  static PickleValuePtr make_global(std::string module, std::string name) {
    auto v = PickleValue::make(Kind::Global);
    v->module = std::move(module);
    v->name = std::move(name);
    return v;
  }
  static PickleValuePtr make_object(PickleValuePtr callable, PickleValuePtr args) {
    auto v = PickleValue::make(Kind::Object);
    v->callable = std::move(callable);
    v->args = std::move(args);
    return v;
  }

  // Mutation of containers (and of objects, e.g. an OrderedDict being filled).
  PickleValue* container(const PickleValuePtr& target, const char* op) {
    if (!target->is(Kind::Dict) && !target->is(Kind::Object))
      fail(std::string(op) + " on a " + target->describe() + ", not a dict");
    return target.get();
  }
  void add_pairs(PickleValue& d, std::vector<PickleValuePtr> kv) {
    if (kv.size() % 2 != 0) fail("odd number of items for a dict");
    for (std::size_t k = 0; k < kv.size(); k += 2) d.entries.emplace_back(std::move(kv[k]), std::move(kv[k + 1]));
  }
  void add_items(const PickleValuePtr& target, std::vector<PickleValuePtr> items) {
    if (!target->is(Kind::List) && !target->is(Kind::Set) && !target->is(Kind::Object))
      fail("append to a " + target->describe() + ", not a list or set");
    for (auto& it : items) target->items.push_back(std::move(it));
  }

  const std::uint8_t* p_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::size_t op_pos_ = 0;
  std::uint8_t proto_ = 0;  // from PROTO; 0 or 1 when absent
  const std::string& context_;
  std::vector<PickleValuePtr> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, PickleValuePtr> memo_;
};

}  // namespace

PickleValuePtr read_pickle(const std::uint8_t* data, std::size_t size, const std::string& context,
                           std::size_t* consumed) {
  Unpickler unpickler(data, size, context);
  PickleValuePtr value = unpickler.run();
  if (consumed) *consumed = unpickler.position();
  return value;
}

}  // namespace difffit
