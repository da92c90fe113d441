// Reads what dataset annotations keep in MATLAB .mat files (Oxford Flowers-102
// imagelabels.mat/setid.mat, Stanford Cars devkit): numeric, char, cell and struct arrays.
// Level 5 files (v5-v7: zlib-compressed or not, little-endian) are parsed here with every
// length checked; v7.3 files (HDF5) are read with libmatio.
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
