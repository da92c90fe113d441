#include "common/hdf5_tensors.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/hdf5_handles.h"
#include "common/platform.h"

namespace difffit {
namespace {

using hdf5::Handle;

hid_t memory_type(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return H5T_NATIVE_FLOAT;
    case at::kDouble: return H5T_NATIVE_DOUBLE;
    case at::kLong: return H5T_NATIVE_INT64;
    case at::kInt: return H5T_NATIVE_INT32;
    case at::kByte: return H5T_NATIVE_UINT8;
    default: throw_data(std::string("HDF5: unsupported tensor dtype ") + at::toString(dtype));
  }
}

bool is_float(at::ScalarType dtype) { return dtype == at::kFloat || dtype == at::kDouble; }

// Throws an IO error naming `what` with HDF5's own reason when `status` is negative.
void check(herr_t status, const std::string& what) {
  if (status < 0) throw_io(what + ": " + hdf5::last_error());
}
Handle checked(hid_t id, Handle::Closer closer, const std::string& what) {
  if (id < 0) throw_io(what + ": " + hdf5::last_error());
  return Handle(id, closer);
}

Handle open_dataset(hid_t file, const std::string& path, const std::string& dataset) {
  return checked(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), H5Dclose, path + ": dataset '" + dataset + "'");
}

std::vector<hsize_t> extent_of(hid_t space) {
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(0, H5Sget_simple_extent_ndims(space))));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

H5T_class_t type_class_of(hid_t dataset) {
  Handle type(H5Dget_type(dataset), H5Tclose);
  return type.valid() ? H5Tget_class(type.get()) : H5T_NO_CLASS;
}

// HDF5 converts within a class (float <-> double, int widths) but not across classes.
void check_type_class(hid_t dataset, const std::string& path, const std::string& name, at::ScalarType dtype) {
  const H5T_class_t stored = type_class_of(dataset);
  const bool want_float = is_float(dtype);
  if ((want_float && stored != H5T_FLOAT) || (!want_float && stored != H5T_INTEGER)) {
    throw_data(path + ": dataset '" + name + "' must be " + (want_float ? "floating point" : "integer") + " (" +
               at::toString(dtype) + ")");
  }
  // Pixels are uint8: wider or signed integers would be wrapped into 0..255 without a word.
  if (dtype == at::kByte) {
    Handle type = checked(H5Dget_type(dataset), H5Tclose, path + ": dataset '" + name + "'");
    if (H5Tget_size(type.get()) != 1 || H5Tget_sign(type.get()) != H5T_SGN_NONE)
      throw_data(path + ": dataset '" + name + "' must be uint8");
  }
}

// Rows [start, start + count) of `dataset` into `out` (count rows of its row shape).
void read_row_range(hid_t dataset, at::ScalarType dtype, int64_t start, int64_t count, void* out,
                    const std::string& what) {
  Handle file_space = checked(H5Dget_space(dataset), H5Sclose, what);
  std::vector<hsize_t> offset = extent_of(file_space.get()), extent = offset;
  std::fill(offset.begin(), offset.end(), 0);
  offset[0] = static_cast<hsize_t>(start);
  extent[0] = static_cast<hsize_t>(count);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, offset.data(), nullptr, extent.data(), nullptr), what);
  Handle memory = checked(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), H5Sclose, what);
  check(H5Dread(dataset, memory_type(dtype), memory.get(), file_space.get(), H5P_DEFAULT, out), what);
}

// A dataset creation property list: chunked (when `chunk` is given), deflated, and
// without modification times (the same writes give the same bytes).
Handle creation_properties(const std::vector<hsize_t>& chunk, int deflate_level, const std::string& what) {
  Handle props = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, what);
  check(H5Pset_obj_track_times(props.get(), 0), what);
  if (!chunk.empty()) {
    check(H5Pset_chunk(props.get(), static_cast<int>(chunk.size()), chunk.data()), what);
    if (deflate_level > 0) check(H5Pset_deflate(props.get(), static_cast<unsigned>(deflate_level)), what);
  }
  return props;
}

// The stored (file) type of a tensor dtype: the native type, little-endian on this machine.
hid_t file_type(at::ScalarType dtype) { return memory_type(dtype); }

}  // namespace

struct Hdf5Reader::Impl {
  Handle file{-1, H5Fclose};
};

Hdf5Reader::Hdf5Reader(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  hdf5::silence_errors();  // failures become one error naming the file, not HDF5's printout
  check_input_file(path, "an HDF5 file");
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw_io(path + ": cannot open as HDF5 (" + hdf5::last_error() + ")");
  impl_->file = Handle(file, H5Fclose);
}

Hdf5Reader::~Hdf5Reader() = default;

bool Hdf5Reader::has(const std::string& dataset) const {
  return H5Lexists(impl_->file.get(), dataset.c_str(), H5P_DEFAULT) > 0;
}

std::vector<int64_t> Hdf5Reader::shape(const std::string& dataset) const {
  if (!has(dataset)) throw_data(path_ + ": missing dataset '" + dataset + "'");
  Handle ds = open_dataset(impl_->file.get(), path_, dataset);
  Handle space = checked(H5Dget_space(ds.get()), H5Sclose, path_ + ": dataset '" + dataset + "'");
  const std::vector<hsize_t> dims = extent_of(space.get());
  return std::vector<int64_t>(dims.begin(), dims.end());
}

namespace {

// A tensor for `dims` of `dtype`, after checking that the file does not declare more than
// this machine could hold (a damaged or hostile extent would otherwise end in the allocator).
at::Tensor empty_for_dataset(const std::vector<int64_t>& dims, at::ScalarType dtype, const std::string& what) {
  const double bytes = std::accumulate(dims.begin(), dims.end(), static_cast<double>(c10::elementSize(dtype)),
                                       [](double a, int64_t d) { return a * static_cast<double>(d); });
  if (exceeds_memory(bytes))
    throw_data(what + ": " + std::to_string(static_cast<int64_t>(bytes / 1e9)) + " GB declared, more than this " +
               "machine's " + std::to_string(physical_memory_bytes() / 1000000000) + " GB of memory");
  return at::empty(dims, at::TensorOptions().dtype(dtype));
}

}  // namespace

at::Tensor Hdf5Reader::read(const std::string& dataset, at::ScalarType dtype, int rank) const {
  std::vector<int64_t> dims = shape(dataset);
  if (rank >= 0 && static_cast<int>(dims.size()) != rank) {
    throw_data(path_ + ": dataset '" + dataset + "' has rank " + std::to_string(dims.size()) +
               ", expected " + std::to_string(rank));
  }
  Handle ds = open_dataset(impl_->file.get(), path_, dataset);
  check_type_class(ds.get(), path_, dataset, dtype);
  at::Tensor out = empty_for_dataset(dims, dtype, path_ + ": dataset '" + dataset + "'");
  if (out.numel() > 0) {
    check(H5Dread(ds.get(), memory_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()),
          path_ + ": reading dataset '" + dataset + "'");
  }
  return out;
}

at::Tensor Hdf5Reader::read_rows(const std::string& dataset, at::ScalarType dtype, int64_t start,
                                 int64_t count) const {
  std::vector<int64_t> dims = shape(dataset);
  if (dims.empty() || start < 0 || count < 0 || start + count > dims[0]) {
    throw_data(path_ + ": dataset '" + dataset + "': rows " + std::to_string(start) + ".." +
               std::to_string(start + count) + " out of range (" + std::to_string(dims.empty() ? 0 : dims[0]) +
               " rows)");
  }
  Handle ds = open_dataset(impl_->file.get(), path_, dataset);
  check_type_class(ds.get(), path_, dataset, dtype);
  dims[0] = count;
  at::Tensor out = empty_for_dataset(dims, dtype, path_ + ": dataset '" + dataset + "'");
  if (out.numel() > 0) read_row_range(ds.get(), dtype, start, count, out.data_ptr(), path_ + ": reading dataset '" + dataset + "'");
  return out;
}

bool Hdf5Reader::has_attribute(const std::string& name) const {
  return H5Aexists(impl_->file.get(), name.c_str()) > 0;
}

std::string Hdf5Reader::read_string_attribute(const std::string& name) const {
  if (!has_attribute(name)) throw_data(path_ + ": missing attribute '" + name + "'");
  const std::string what = path_ + ": attribute '" + name + "'";
  Handle attr = checked(H5Aopen(impl_->file.get(), name.c_str(), H5P_DEFAULT), H5Aclose, what);
  Handle stored = checked(H5Aget_type(attr.get()), H5Tclose, what);
  if (H5Tget_class(stored.get()) != H5T_STRING) throw_data(what + " is not a string");
  if (H5Tis_variable_str(stored.get()) > 0) {
    char* text = nullptr;
    Handle memory = checked(H5Tcopy(H5T_C_S1), H5Tclose, what);
    check(H5Tset_size(memory.get(), H5T_VARIABLE), what);
    check(H5Tset_cset(memory.get(), H5Tget_cset(stored.get())), what);
    check(H5Aread(attr.get(), memory.get(), &text), what);
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  const size_t width = H5Tget_size(stored.get());
  std::vector<char> buffer(width + 1, 0);
  check(H5Aread(attr.get(), stored.get(), buffer.data()), what);
  return std::string(buffer.data(), strnlen(buffer.data(), width));
}

int64_t Hdf5Reader::read_int_attribute(const std::string& name) const {
  if (!has_attribute(name)) throw_data(path_ + ": missing attribute '" + name + "'");
  const std::string what = path_ + ": attribute '" + name + "'";
  Handle attr = checked(H5Aopen(impl_->file.get(), name.c_str(), H5P_DEFAULT), H5Aclose, what);
  Handle stored = checked(H5Aget_type(attr.get()), H5Tclose, what);
  if (H5Tget_class(stored.get()) != H5T_INTEGER) throw_data(path_ + ": attribute '" + name + "' is not an integer");
  int64_t value = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), what);
  return value;
}

void Hdf5Reader::read_rows_into(const std::string& dataset, at::ScalarType dtype, int64_t start, int64_t count,
                                void* out) const {
  const std::string what = path_ + ": reading rows of '" + dataset + "'";
  Handle ds = open_dataset(impl_->file.get(), path_, dataset);
  Handle space = checked(H5Dget_space(ds.get()), H5Sclose, what);
  const std::vector<hsize_t> dims = extent_of(space.get());
  if (dims.empty()) throw_data(path_ + ": dataset '" + dataset + "' is a scalar");
  if (start < 0 || count < 0 || static_cast<hsize_t>(start + count) > dims[0]) {
    throw_data(path_ + ": dataset '" + dataset + "': rows " + std::to_string(start) + "+" + std::to_string(count) +
               " outside 0.." + std::to_string(dims[0]));
  }
  if (count == 0) return;
  if (is_float(dtype) != (type_class_of(ds.get()) == H5T_FLOAT)) {
    throw_data(path_ + ": dataset '" + dataset + "' has the wrong type class for " + at::toString(dtype));
  }
  read_row_range(ds.get(), dtype, start, count, out, what);
}

std::vector<std::string> Hdf5Reader::read_strings(const std::string& dataset) const {
  std::vector<int64_t> dims = shape(dataset);
  if (dims.size() != 1) throw_data(path_ + ": dataset '" + dataset + "' must be 1-D strings");
  const std::string what = path_ + ": reading strings '" + dataset + "'";
  Handle ds = open_dataset(impl_->file.get(), path_, dataset);
  Handle stored = checked(H5Dget_type(ds.get()), H5Tclose, what);
  if (H5Tget_class(stored.get()) != H5T_STRING) throw_data(path_ + ": dataset '" + dataset + "' is not a string dataset");
  std::vector<std::string> out(static_cast<size_t>(dims[0]));
  if (dims[0] == 0) return out;
  if (H5Tis_variable_str(stored.get()) > 0) {
    std::vector<char*> pointers(out.size(), nullptr);
    Handle memory = checked(H5Tcopy(H5T_C_S1), H5Tclose, what);
    check(H5Tset_size(memory.get(), H5T_VARIABLE), what);
    check(H5Dread(ds.get(), memory.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), what);
    for (size_t i = 0; i < out.size(); ++i) out[i] = pointers[i] ? pointers[i] : "";
    Handle space = checked(H5Dget_space(ds.get()), H5Sclose, what);
    H5Dvlen_reclaim(memory.get(), space.get(), H5P_DEFAULT, pointers.data());
  } else {
    const size_t width = H5Tget_size(stored.get());
    std::vector<char> buffer(width * out.size());
    check(H5Dread(ds.get(), stored.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), what);
    for (size_t i = 0; i < out.size(); ++i) {
      const char* p = buffer.data() + i * width;
      out[i].assign(p, strnlen(p, width));
    }
  }
  return out;
}

struct Hdf5Writer::Impl {
  Handle file{-1, H5Fclose};
  struct Appendable {
    std::unique_ptr<Handle> dataset;
    at::ScalarType dtype;
    std::vector<hsize_t> dims;  // current extent
    int64_t row_elements;
  };
  std::map<std::string, Appendable> appendables;
};

Hdf5Writer::Hdf5Writer(const std::string& path)
    : impl_(std::make_unique<Impl>()), path_(path), tmp_path_(temporary_path_for(path)) {
  hdf5::silence_errors();
  const hid_t file = H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) throw_io(tmp_path_ + ": cannot create HDF5 file (" + hdf5::last_error() + ")");
  impl_->file = Handle(file, H5Fclose);
}

Hdf5Writer::~Hdf5Writer() {
  if (committed_) return;
  impl_->appendables.clear();
  impl_->file.close();
  std::remove(tmp_path_.c_str());
}

void Hdf5Writer::write(const std::string& dataset, const at::Tensor& tensor, bool compress) {
  at::Tensor data = tensor.detach().to(at::kCPU).contiguous();
  std::vector<hsize_t> dims(data.sizes().begin(), data.sizes().end());
  const std::string what = path_ + ": writing dataset '" + dataset + "'";
  Handle space = checked(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose, what);
  std::vector<hsize_t> chunk;
  if (compress && !dims.empty() && data.numel() > 0) {
    chunk = dims;
    chunk[0] = std::min<hsize_t>(dims[0], 64);  // chunks of up to 64 leading rows
  }
  Handle props = creation_properties(chunk, 4, what);
  const hid_t type = memory_type(data.scalar_type());
  Handle ds = checked(H5Dcreate2(impl_->file.get(), dataset.c_str(), file_type(data.scalar_type()), space.get(),
                                 H5P_DEFAULT, props.get(), H5P_DEFAULT),
                      H5Dclose, what);
  if (data.numel() > 0) check(H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data_ptr()), what);
}

void Hdf5Writer::write_string_attribute(const std::string& name, const std::string& value) {
  const std::string what = path_ + ": writing attribute '" + name + "'";
  const hdf5::FixedWidthStrings data = hdf5::fixed_width_strings({value});
  Handle type = checked(H5Tcopy(H5T_C_S1), H5Tclose, what);
  check(H5Tset_size(type.get(), data.width), what);
  Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, what);
  Handle attr = checked(H5Acreate2(impl_->file.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                        H5Aclose, what);
  check(H5Awrite(attr.get(), type.get(), data.bytes.data()), what);
}

void Hdf5Writer::write_int_attribute(const std::string& name, int64_t value) {
  const std::string what = path_ + ": writing attribute '" + name + "'";
  Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, what);
  Handle attr = checked(H5Acreate2(impl_->file.get(), name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT,
                                   H5P_DEFAULT),
                        H5Aclose, what);
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), what);
}

void Hdf5Writer::write_strings(const std::string& dataset, const std::vector<std::string>& values) {
  const hdf5::FixedWidthStrings packed = hdf5::fixed_width_strings(values);
  const size_t width = packed.width;
  const std::string what = path_ + ": writing strings '" + dataset + "'";
  Handle type = checked(H5Tcopy(H5T_C_S1), H5Tclose, what);
  check(H5Tset_size(type.get(), width), what);
  check(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), what);
  hsize_t dims[1] = {values.size()};
  Handle space = checked(H5Screate_simple(1, dims, nullptr), H5Sclose, what);
  std::vector<hsize_t> chunk;
  if (!values.empty()) chunk = {std::min<hsize_t>(values.size(), std::max<hsize_t>(1, 65536 / width))};
  Handle props = creation_properties(chunk, 4, what);
  Handle ds = checked(
      H5Dcreate2(impl_->file.get(), dataset.c_str(), type.get(), space.get(), H5P_DEFAULT, props.get(), H5P_DEFAULT),
      H5Dclose, what);
  if (!values.empty()) check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.bytes.data()), what);
}

void Hdf5Writer::create_appendable(const std::string& dataset, at::ScalarType dtype,
                                   const std::vector<int64_t>& row_shape, int64_t chunk_rows, int deflate_level) {
  if (impl_->appendables.count(dataset)) throw_io(path_ + ": dataset '" + dataset + "' created twice");
  const std::string what = path_ + ": creating dataset '" + dataset + "'";
  Impl::Appendable entry;
  entry.dtype = dtype;
  entry.dims.push_back(0);
  entry.row_elements = 1;
  for (int64_t d : row_shape) {
    entry.dims.push_back(static_cast<hsize_t>(d));
    entry.row_elements *= d;
  }
  std::vector<hsize_t> max_dims = entry.dims, chunk = entry.dims;
  max_dims[0] = H5S_UNLIMITED;
  chunk[0] = static_cast<hsize_t>(std::max<int64_t>(1, chunk_rows));
  Handle space = checked(H5Screate_simple(static_cast<int>(entry.dims.size()), entry.dims.data(), max_dims.data()),
                         H5Sclose, what);
  Handle props = creation_properties(chunk, deflate_level, what);
  entry.dataset = std::make_unique<Handle>(checked(H5Dcreate2(impl_->file.get(), dataset.c_str(), file_type(dtype),
                                                              space.get(), H5P_DEFAULT, props.get(), H5P_DEFAULT),
                                                   H5Dclose, what));
  impl_->appendables.emplace(dataset, std::move(entry));
}

void Hdf5Writer::append(const std::string& dataset, const void* data, int64_t rows) {
  auto it = impl_->appendables.find(dataset);
  if (it == impl_->appendables.end()) throw_io(path_ + ": append to '" + dataset + "' before create_appendable");
  if (rows <= 0) return;
  const std::string what = path_ + ": appending to '" + dataset + "'";
  Impl::Appendable& entry = it->second;
  std::vector<hsize_t> offset(entry.dims.size(), 0), extent = entry.dims;
  offset[0] = entry.dims[0];
  extent[0] = static_cast<hsize_t>(rows);
  std::vector<hsize_t> grown = entry.dims;
  grown[0] += static_cast<hsize_t>(rows);
  check(H5Dset_extent(entry.dataset->get(), grown.data()), what);
  entry.dims = grown;
  Handle file_space = checked(H5Dget_space(entry.dataset->get()), H5Sclose, what);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, offset.data(), nullptr, extent.data(), nullptr), what);
  Handle memory = checked(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), H5Sclose, what);
  check(H5Dwrite(entry.dataset->get(), memory_type(entry.dtype), memory.get(), file_space.get(), H5P_DEFAULT, data),
        what);
}

void Hdf5Writer::append(const std::string& dataset, const at::Tensor& rows) {
  auto it = impl_->appendables.find(dataset);
  if (it == impl_->appendables.end()) throw_io(path_ + ": append to '" + dataset + "' before create_appendable");
  at::Tensor data = rows.detach().to(at::kCPU).contiguous();
  if (data.scalar_type() != it->second.dtype || data.dim() != static_cast<int64_t>(it->second.dims.size()) ||
      (data.dim() > 0 && data.numel() != data.size(0) * it->second.row_elements)) {
    throw_io(path_ + ": append to '" + dataset + "': tensor of shape " + c10::str(data.sizes()) + " and type " +
             at::toString(data.scalar_type()) + " does not match the dataset's rows");
  }
  append(dataset, data.data_ptr(), data.size(0));
}

int64_t Hdf5Writer::appended_rows(const std::string& dataset) const {
  auto it = impl_->appendables.find(dataset);
  return it == impl_->appendables.end() ? 0 : static_cast<int64_t>(it->second.dims[0]);
}

void Hdf5Writer::commit() {
  impl_->appendables.clear();  // datasets must be closed before the file
  if (impl_->file.close() < 0) throw_io(tmp_path_ + ": closing: " + hdf5::last_error());
  commit_file(tmp_path_, path_);
  committed_ = true;
}

}  // namespace difffit
