// A small generic unpickler: turns a Python pickle (protocols 0-5, as written
// by torch.save) into a tree of plain values without executing anything.
// Calls to classes/functions (REDUCE, NEWOBJ, BUILD) become opaque Object
// nodes that the caller interprets (see torch_checkpoint.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace difffit {

struct PickleValue;
// Shared because the pickle memo lets one object appear in several places
// (e.g. a storage used by many tensors) and later opcodes mutate it in place.
using PickleValuePtr = std::shared_ptr<PickleValue>;

struct PickleValue {
  enum class Kind {
    None,
    Bool,
    Int,           // fits in int64
    BigInt,        // wider integer: `str` holds its little-endian two's complement bytes
    Float,
    String,        // `str` holds UTF-8
    Bytes,         // `str` holds raw bytes (also bytearray)
    List,          // `items`
    Tuple,         // `items`
    Set,           // `items` (set and frozenset)
    Dict,          // `entries`, in insertion order, keys of any kind
    Global,        // module + name, e.g. "torch._utils" + "_rebuild_tensor_v2"
    Object,        // callable(args) result: `callable`, `args`, plus BUILD `state` and
                   // any APPEND/SETITEM applied to it (`items` / `entries`)
    PersistentId,  // BINPERSID/PERSID: `pid` holds the id object
  };

  Kind kind = Kind::None;
  bool b = false;
  std::int64_t i = 0;
  double f = 0.0;
  std::string str;
  std::string module, name;  // Global
  std::vector<PickleValuePtr> items;
  std::vector<std::pair<PickleValuePtr, PickleValuePtr>> entries;
  PickleValuePtr callable, args, state, pid;

  PickleValue() = default;
  PickleValue(const PickleValue&) = default;
  PickleValue& operator=(const PickleValue&) = default;
  ~PickleValue();  // iterative, so deeply nested (hostile) pickles cannot overflow the stack

  bool is(Kind k) const { return kind == k; }
  bool is_string() const { return kind == Kind::String; }
  // "module.name" for a Global, or the callable's name for an Object; else "".
  std::string qualified_name() const;
  // For a String-keyed Dict (or Object with entries): the value of `key`, or nullptr.
  PickleValuePtr get(const std::string& key) const;
  // Short human-readable description for error messages: "int 3", "str 'x'", "dict (4 entries)", ...
  std::string describe() const;

  static PickleValuePtr make(Kind k);
};

// Parses one pickle. `context` (e.g. "model.pt: archive/data.pkl") starts
// every error message. Throws difffit::Error (Data) on malformed input or an
// unsupported opcode, naming the opcode byte and its offset; decimal integer text (INT,
// LONG) is limited to 4300 digits, Python's own default. With `consumed`, the
// number of bytes up to and including STOP is stored there (files that hold a
// sequence of pickles, e.g. torch's legacy format, continue after it).
PickleValuePtr read_pickle(const std::uint8_t* data, std::size_t size, const std::string& context,
                           std::size_t* consumed = nullptr);

}  // namespace difffit
