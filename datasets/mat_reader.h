// A reader for the subset of MATLAB level-5 .mat files that dataset annotations use
// (Oxford Flowers-102 imagelabels.mat/setid.mat, Stanford Cars devkit): numeric
// arrays, char arrays, cell arrays and struct arrays, zlib-compressed or not,
// little-endian. HDF5-based v7.3 files are not supported (they are plain HDF5).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace difffit {

struct MatValue {
  enum class Kind { Numeric, Char, Cell, Struct, Unsupported };
  Kind kind = Kind::Numeric;
  std::vector<int64_t> dims;             // MATLAB dimensions (column-major data)
  std::vector<double> numbers;           // Numeric: real part, converted to double
  std::string text;                      // Char: characters in column-major order (UTF-16 code units > 255 become '?')
  std::vector<std::string> field_names;  // Struct
  std::vector<MatValue> elements;        // Cell: numel() values; Struct: numel() * fields, element-major

  int64_t numel() const;
  // Element i's field `name` of a struct array; throws when absent.
  const MatValue& field(int64_t i, const std::string& name) const;
  // A 1xN or Nx1 char array as a string; throws otherwise.
  std::string as_string() const;
  // A numeric scalar; throws otherwise.
  double as_scalar() const;
};

// Top-level variables by name. Throws Data errors for malformed or unsupported files.
std::map<std::string, MatValue> read_mat_file(const std::string& path);

}  // namespace difffit
