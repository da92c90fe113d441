#include "datasets/mat_reader.h"

#include <matio.h>
#include <zlib.h>

#include <cstring>
#include <memory>

#include "common/error.h"
#include "common/input_file.h"
#include "common/hdf5_handles.h"

namespace difffit {
namespace {

enum MatType : uint32_t {
  miINT8 = 1, miUINT8 = 2, miINT16 = 3, miUINT16 = 4, miINT32 = 5, miUINT32 = 6, miSINGLE = 7,
  miDOUBLE = 9, miINT64 = 12, miUINT64 = 13, miMATRIX = 14, miCOMPRESSED = 15, miUTF8 = 16,
  miUTF16 = 17, miUTF32 = 18,
};
enum MatClass : uint32_t { mxCELL = 1, mxSTRUCT = 2, mxCHAR = 4 };

struct Element {
  uint32_t type = 0;
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// A cursor over little-endian bytes; `where` names the file in errors.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& where) : p_(data), end_(data + size), where_(where) {}
  bool done() const { return p_ >= end_; }

  Element next(bool pad = true) {
    need(8);
    uint32_t type = u32(p_), size = u32(p_ + 4);
    Element e;
    if (type >> 16) {  // small data element: size and type share the first word
      e.type = type & 0xffff;
      e.size = type >> 16;
      if (e.size > 4) fail("bad small element");
      e.data = p_ + 4;
      p_ += 8;
      return e;
    }
    p_ += 8;
    need(size);
    e.type = type;
    e.size = size;
    e.data = p_;
    size_t advance = size;
    if (pad && type != miCOMPRESSED) advance = (size + 7) / 8 * 8;
    p_ += std::min<size_t>(advance, static_cast<size_t>(end_ - p_));
    return e;
  }

  [[noreturn]] void fail(const std::string& what) const { throw_data(where_ + ": malformed .mat file (" + what + ")"); }
  static uint32_t u32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }

 private:
  void need(size_t n) const {
    if (static_cast<size_t>(end_ - p_) < n) fail("truncated");
  }
  const uint8_t* p_;
  const uint8_t* end_;
  std::string where_;
};

template <typename T>
void append_as_double(const uint8_t* data, size_t size, std::vector<double>& out) {
  const size_t n = size / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, data + i * sizeof(T), sizeof(T));
    out.push_back(static_cast<double>(v));
  }
}

std::vector<double> numbers_of(const Element& e, const Cursor& cursor) {
  std::vector<double> out;
  switch (e.type) {
    case miINT8: append_as_double<int8_t>(e.data, e.size, out); break;
    case miUINT8: case miUTF8: append_as_double<uint8_t>(e.data, e.size, out); break;
    case miINT16: append_as_double<int16_t>(e.data, e.size, out); break;
    case miUINT16: case miUTF16: append_as_double<uint16_t>(e.data, e.size, out); break;
    case miINT32: append_as_double<int32_t>(e.data, e.size, out); break;
    case miUINT32: case miUTF32: append_as_double<uint32_t>(e.data, e.size, out); break;
    case miSINGLE: append_as_double<float>(e.data, e.size, out); break;
    case miDOUBLE: append_as_double<double>(e.data, e.size, out); break;
    case miINT64: append_as_double<int64_t>(e.data, e.size, out); break;
    case miUINT64: append_as_double<uint64_t>(e.data, e.size, out); break;
    default: cursor.fail("unexpected data type " + std::to_string(e.type));
  }
  return out;
}

std::string inflate_all(const Element& e, const std::string& where) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) throw_data(where + ": zlib init failed");
  zs.next_in = const_cast<Bytef*>(e.data);
  zs.avail_in = static_cast<uInt>(e.size);
  std::string out;
  char buffer[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof(buffer);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      throw_data(where + ": corrupt compressed .mat element");
    }
    out.append(buffer, sizeof(buffer) - zs.avail_out);
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) break;  // input ended early
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw_data(where + ": truncated compressed .mat element");
  return out;
}

MatValue parse_matrix(const Element& matrix, std::string* name, const std::string& where, int depth);

MatValue parse_matrix_element(Cursor& cursor, const std::string& where, int depth) {
  Element e = cursor.next();
  if (e.type != miMATRIX) cursor.fail("expected a matrix element");
  return parse_matrix(e, nullptr, where, depth + 1);
}

MatValue parse_matrix(const Element& matrix, std::string* name, const std::string& where, int depth) {
  if (depth > 32) throw_data(where + ": .mat nesting too deep");
  MatValue value;
  if (matrix.size == 0) return value;  // empty placeholder in cells and structs
  Cursor c(matrix.data, matrix.size, where);
  Element flags = c.next();
  if (flags.size < 8) c.fail("array flags");
  const uint32_t mx_class = Cursor::u32(flags.data) & 0xff;
  Element dims = c.next();
  for (double d : numbers_of(dims, c)) value.dims.push_back(static_cast<int64_t>(d));
  Element name_element = c.next();
  if (name) name->assign(reinterpret_cast<const char*>(name_element.data), name_element.size);
  const int64_t n = value.numel();
  if (mx_class == mxCELL) {
    value.kind = MatValue::Kind::Cell;
    for (int64_t i = 0; i < n; ++i) value.elements.push_back(parse_matrix_element(c, where, depth));
  } else if (mx_class == mxSTRUCT) {
    value.kind = MatValue::Kind::Struct;
    Element length_element = c.next();
    std::vector<double> length = numbers_of(length_element, c);
    if (length.size() != 1 || length[0] <= 0) c.fail("struct field name length");
    const size_t width = static_cast<size_t>(length[0]);
    Element names = c.next();
    for (size_t off = 0; off + width <= names.size; off += width) {
      const char* p = reinterpret_cast<const char*>(names.data + off);
      value.field_names.emplace_back(p, strnlen(p, width));
    }
    for (int64_t i = 0; i < n * static_cast<int64_t>(value.field_names.size()); ++i) {
      value.elements.push_back(parse_matrix_element(c, where, depth));
    }
  } else if (mx_class == mxCHAR) {
    value.kind = MatValue::Kind::Char;
    if (!c.done()) {
      for (double code : numbers_of(c.next(), c)) value.text += code < 256 ? static_cast<char>(code) : '?';
    }
  } else if (mx_class >= 6 && mx_class <= 15) {
    value.kind = MatValue::Kind::Numeric;
    if (!c.done()) value.numbers = numbers_of(c.next(), c);  // the real part
  } else {
    value.kind = MatValue::Kind::Unsupported;
  }
  return value;
}

// ---- v7.3 (HDF5) files, through libmatio ------------------------------------------
// (Level 5 files keep the bounds-checked reader above: libmatio 1.5.23 crashes on some
// corrupted level 5 files, and no input may crash difffit.)

template <typename T>
void append_values(const void* data, size_t count, std::vector<double>& out) {
  const T* p = static_cast<const T*>(data);
  for (size_t i = 0; i < count; ++i) out.push_back(static_cast<double>(p[i]));
}

// The real part of a numeric or char variable, as doubles (at most what its buffer holds).
std::vector<double> matio_numbers(const matvar_t* v, size_t count) {
  std::vector<double> out;
  const void* data = v->isComplex && v->data ? static_cast<const mat_complex_split_t*>(v->data)->Re : v->data;
  if (!data) return out;
  const size_t width = Mat_SizeOf(v->data_type);
  if (width == 0) return out;
  count = std::min(count, v->nbytes / width);
  switch (v->data_type) {
    case MAT_T_INT8: append_values<int8_t>(data, count, out); break;
    case MAT_T_UINT8: case MAT_T_UTF8: append_values<uint8_t>(data, count, out); break;
    case MAT_T_INT16: append_values<int16_t>(data, count, out); break;
    case MAT_T_UINT16: case MAT_T_UTF16: append_values<uint16_t>(data, count, out); break;
    case MAT_T_INT32: append_values<int32_t>(data, count, out); break;
    case MAT_T_UINT32: case MAT_T_UTF32: append_values<uint32_t>(data, count, out); break;
    case MAT_T_SINGLE: append_values<float>(data, count, out); break;
    case MAT_T_DOUBLE: append_values<double>(data, count, out); break;
    case MAT_T_INT64: append_values<int64_t>(data, count, out); break;
    case MAT_T_UINT64: append_values<uint64_t>(data, count, out); break;
    default: break;
  }
  return out;
}

MatValue from_matio(matvar_t* v, const std::string& where, int depth) {
  if (depth > 32) throw_data(where + ": .mat nesting too deep");
  MatValue value;
  for (int d = 0; d < v->rank; ++d) value.dims.push_back(static_cast<int64_t>(v->dims[d]));
  const int64_t n = value.numel();
  auto child = [&](matvar_t* c) { return c ? from_matio(c, where, depth + 1) : MatValue{}; };
  const size_t fields = v->class_type == MAT_C_STRUCT ? Mat_VarGetNumberOfFields(v) : 1;
  if ((v->class_type == MAT_C_CELL || v->class_type == MAT_C_STRUCT) && fields > 0) {
    // libmatio indexes the element array without checks: trust only the elements it holds.
    const int64_t held = v->data ? static_cast<int64_t>(v->nbytes / sizeof(matvar_t*) / fields) : 0;
    if (n < 0 || n > held) throw_data(where + ": malformed .mat file (" + std::to_string(n) + " elements, " +
                                      std::to_string(held) + " stored)");
  }
  switch (v->class_type) {
    case MAT_C_CELL:
      value.kind = MatValue::Kind::Cell;
      for (int64_t i = 0; i < n; ++i) value.elements.push_back(child(Mat_VarGetCell(v, static_cast<int>(i))));
      break;
    case MAT_C_STRUCT: {
      value.kind = MatValue::Kind::Struct;
      char* const* names = Mat_VarGetStructFieldnames(v);
      for (size_t f = 0; f < fields; ++f) value.field_names.emplace_back(names && names[f] ? names[f] : "");
      for (int64_t i = 0; i < n; ++i)
        for (size_t f = 0; f < fields; ++f)
          value.elements.push_back(child(Mat_VarGetStructFieldByIndex(v, f, static_cast<size_t>(i))));
      break;
    }
    case MAT_C_CHAR:
      value.kind = MatValue::Kind::Char;
      for (double code : matio_numbers(v, static_cast<size_t>(n))) value.text += code < 256 ? static_cast<char>(code) : '?';
      break;
    case MAT_C_DOUBLE: case MAT_C_SINGLE: case MAT_C_INT8: case MAT_C_UINT8: case MAT_C_INT16: case MAT_C_UINT16:
    case MAT_C_INT32: case MAT_C_UINT32: case MAT_C_INT64: case MAT_C_UINT64:
      value.kind = MatValue::Kind::Numeric;
      value.numbers = matio_numbers(v, static_cast<size_t>(n));
      break;
    default:
      value.kind = MatValue::Kind::Unsupported;
  }
  return value;
}

std::map<std::string, MatValue> read_mat73_file(const std::string& path) {
  hdf5::QuietErrors quiet;  // a damaged file is one error naming it, not pages of HDF5 diagnostics
  std::unique_ptr<mat_t, int (*)(mat_t*)> file(Mat_Open(path.c_str(), MAT_ACC_RDONLY), Mat_Close);
  if (!file) throw_data(path + ": cannot read this MATLAB v7.3 (HDF5) .mat file");
  std::map<std::string, MatValue> out;
  while (true) {
    std::unique_ptr<matvar_t, void (*)(matvar_t*)> var(Mat_VarReadNext(file.get()), Mat_VarFree);
    if (!var) break;
    out.emplace(var->name ? var->name : "", from_matio(var.get(), path, 0));
  }
  return out;
}

}  // namespace

int64_t MatValue::numel() const {
  if (dims.empty()) return 0;
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

const MatValue& MatValue::field(int64_t i, const std::string& name) const {
  if (kind != Kind::Struct) throw_data(".mat: value is not a struct array (looking for '" + name + "')");
  for (size_t f = 0; f < field_names.size(); ++f) {
    if (field_names[f] == name) {
      if (i < 0 || i >= numel()) throw_data(".mat: struct index out of range");
      return elements[static_cast<size_t>(i) * field_names.size() + f];
    }
  }
  throw_data(".mat: struct has no field '" + name + "'");
}

std::string MatValue::as_string() const {
  if (kind != Kind::Char || dims.size() != 2 || (dims[0] > 1 && dims[1] > 1)) {
    throw_data(".mat: expected a 1xN char array");
  }
  return text;
}

double MatValue::as_scalar() const {
  if (kind != Kind::Numeric || numbers.size() != 1) throw_data(".mat: expected a numeric scalar");
  return numbers[0];
}

std::map<std::string, MatValue> read_mat_file(const std::string& path) {
  const std::string bytes = read_input_file(path, "a .mat file", kListingFileLimit);
  if (bytes.size() < 128 || bytes.compare(0, 6, "MATLAB") != 0) throw_data(path + ": not a MATLAB .mat file");
  // v7.3 by its version field (0x0200, little-endian), as libmatio decides: a damaged header
  // must not send a level 5 file to libmatio's level 5 reader.
  if (bytes.compare(124, 4, std::string("\x00\x02IM", 4)) == 0) return read_mat73_file(path);
  if (bytes.compare(126, 2, "IM") != 0) throw_data(path + ": big-endian .mat files are not supported");
  std::map<std::string, MatValue> out;
  Cursor top(reinterpret_cast<const uint8_t*>(bytes.data()) + 128, bytes.size() - 128, path);
  while (!top.done()) {
    Element e = top.next();
    std::string inflated;
    if (e.type == miCOMPRESSED) {
      inflated = inflate_all(e, path);
      Cursor inner(reinterpret_cast<const uint8_t*>(inflated.data()), inflated.size(), path);
      e = inner.next();
    }
    if (e.type != miMATRIX) continue;  // e.g. subsystem data
    std::string name;
    MatValue value = parse_matrix(e, &name, path, 0);
    out.emplace(name, std::move(value));
  }
  return out;
}

}  // namespace difffit
