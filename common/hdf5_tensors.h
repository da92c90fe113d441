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
  std::string read_string_attribute(const std::string& name) const;  // root attribute
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
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::string tmp_path_;
  bool committed_ = false;
};

}  // namespace difffit
