// Tensors in and out of HDF5 files. Errors name the file and the dataset.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace difffit {

class Hdf5Reader {
 public:
  explicit Hdf5Reader(const std::string& path);
  ~Hdf5Reader();
  Hdf5Reader(const Hdf5Reader&) = delete;
  Hdf5Reader& operator=(const Hdf5Reader&) = delete;

  bool has(const std::string& dataset) const;
  std::vector<int64_t> shape(const std::string& dataset) const;
  // Reads a whole dataset as `dtype` (float32/float64/int64/int32/uint8). The stored type
  // must be of the same class (float or integer); `rank` >= 0 also checks the rank.
  at::Tensor read(const std::string& dataset, at::ScalarType dtype, int rank = -1) const;
  // Rows [start, start+count) along the first dimension, so large datasets stream in batches.
  at::Tensor read_rows(const std::string& dataset, at::ScalarType dtype, int64_t start, int64_t count) const;
  std::string read_string_attribute(const std::string& name) const;  // root attribute
  bool has_attribute(const std::string& name) const;                 // root attribute
  int64_t read_int_attribute(const std::string& name) const;         // root attribute
  // Like read_rows, into caller memory of count * row elements of `dtype` (no allocation).
  void read_rows_into(const std::string& dataset, at::ScalarType dtype, int64_t start, int64_t count,
                      void* out) const;
  std::vector<std::string> read_strings(const std::string& dataset) const;  // 1-D string dataset
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

// Writes a new file atomically: everything goes to PATH.tmp, which is renamed to
// PATH by commit(). A writer destroyed without commit() removes its temporary file,
// so a crash never leaves a file that looks complete.
class Hdf5Writer {
 public:
  explicit Hdf5Writer(const std::string& path);
  ~Hdf5Writer();
  Hdf5Writer(const Hdf5Writer&) = delete;
  Hdf5Writer& operator=(const Hdf5Writer&) = delete;

  void write(const std::string& dataset, const at::Tensor& tensor, bool compress = false);
  void write_string_attribute(const std::string& name, const std::string& value);  // root attribute
  void write_int_attribute(const std::string& name, int64_t value);                 // root attribute
  // 1-D dataset of fixed-length, null-padded strings (deflate-compressed).
  void write_strings(const std::string& dataset, const std::vector<std::string>& values);

  // Streaming writes: a chunked, deflate-compressed dataset whose first dimension grows
  // with each append(), so a large dataset never has to be in memory at once. These
  // datasets record no modification times, so the same appends give identical bytes.
  void create_appendable(const std::string& dataset, at::ScalarType dtype, const std::vector<int64_t>& row_shape,
                         int64_t chunk_rows, int deflate_level = 4);
  void append(const std::string& dataset, const void* data, int64_t rows);  // rows * row elements of its dtype
  void append(const std::string& dataset, const at::Tensor& rows);          // shape (k, row_shape...)
  int64_t appended_rows(const std::string& dataset) const;
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::string tmp_path_;
  bool committed_ = false;
};

}  // namespace difffit
