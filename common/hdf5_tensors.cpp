#include "common/hdf5_tensors.h"

#include <ATen/ATen.h>
#include <H5Cpp.h>

#include <cstdio>
#include <cstring>
#include <map>

#include "common/atomic_file.h"
#include "common/error.h"

namespace difffit {
namespace {

const H5::PredType& memory_type(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return H5::PredType::NATIVE_FLOAT;
    case at::kDouble: return H5::PredType::NATIVE_DOUBLE;
    case at::kLong: return H5::PredType::NATIVE_INT64;
    case at::kInt: return H5::PredType::NATIVE_INT32;
    case at::kByte: return H5::PredType::NATIVE_UINT8;
    default: throw_data(std::string("HDF5: unsupported tensor dtype ") + at::toString(dtype));
  }
}

bool is_float(at::ScalarType dtype) { return dtype == at::kFloat || dtype == at::kDouble; }

// HDF5 converts within a class (float <-> double, int widths) but not across classes.
void check_type_class(const H5::DataSet& ds, const std::string& path, const std::string& dataset,
                      at::ScalarType dtype) {
  const H5T_class_t stored = ds.getTypeClass();
  const bool want_float = is_float(dtype);
  if ((want_float && stored != H5T_FLOAT) || (!want_float && stored != H5T_INTEGER)) {
    throw_data(path + ": dataset '" + dataset + "' must be " + (want_float ? "floating point" : "integer") + " (" +
               at::toString(dtype) + ")");
  }
}


std::string h5_message(const H5::Exception& e) { return e.getDetailMsg(); }

}  // namespace

struct Hdf5Reader::Impl {
  H5::H5File file;
};

Hdf5Reader::Hdf5Reader(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  H5::Exception::dontPrint();
  try {
    impl_->file.openFile(path, H5F_ACC_RDONLY);
  } catch (const H5::Exception& e) {
    throw_io(path + ": cannot open as HDF5 (" + h5_message(e) + ")");
  }
}

Hdf5Reader::~Hdf5Reader() = default;

bool Hdf5Reader::has(const std::string& dataset) const {
  return H5Lexists(impl_->file.getId(), dataset.c_str(), H5P_DEFAULT) > 0;
}

std::vector<int64_t> Hdf5Reader::shape(const std::string& dataset) const {
  if (!has(dataset)) throw_data(path_ + ": missing dataset '" + dataset + "'");
  try {
    H5::DataSpace space = impl_->file.openDataSet(dataset).getSpace();
    std::vector<hsize_t> dims(space.getSimpleExtentNdims());
    space.getSimpleExtentDims(dims.data());
    return std::vector<int64_t>(dims.begin(), dims.end());
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": dataset '" + dataset + "': " + h5_message(e));
  }
}

at::Tensor Hdf5Reader::read(const std::string& dataset, at::ScalarType dtype, int rank) const {
  std::vector<int64_t> dims = shape(dataset);
  if (rank >= 0 && static_cast<int>(dims.size()) != rank) {
    throw_data(path_ + ": dataset '" + dataset + "' has rank " + std::to_string(dims.size()) +
               ", expected " + std::to_string(rank));
  }
  try {
    H5::DataSet ds = impl_->file.openDataSet(dataset);
    check_type_class(ds, path_, dataset, dtype);
    at::Tensor out = at::empty(dims, at::TensorOptions().dtype(dtype));
    if (out.numel() > 0) ds.read(out.data_ptr(), memory_type(dtype));
    return out;
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": reading dataset '" + dataset + "': " + h5_message(e));
  }
}

at::Tensor Hdf5Reader::read_rows(const std::string& dataset, at::ScalarType dtype, int64_t start,
                                 int64_t count) const {
  std::vector<int64_t> dims = shape(dataset);
  if (dims.empty() || start < 0 || count < 0 || start + count > dims[0]) {
    throw_data(path_ + ": dataset '" + dataset + "': rows " + std::to_string(start) + ".." +
               std::to_string(start + count) + " out of range (" + std::to_string(dims.empty() ? 0 : dims[0]) +
               " rows)");
  }
  try {
    H5::DataSet ds = impl_->file.openDataSet(dataset);
    check_type_class(ds, path_, dataset, dtype);
    dims[0] = count;
    at::Tensor out = at::empty(dims, at::TensorOptions().dtype(dtype));
    if (out.numel() == 0) return out;
    H5::DataSpace file_space = ds.getSpace();
    std::vector<hsize_t> offset(dims.size(), 0), extent(dims.begin(), dims.end());
    offset[0] = static_cast<hsize_t>(start);
    file_space.selectHyperslab(H5S_SELECT_SET, extent.data(), offset.data());
    H5::DataSpace memory_space(static_cast<int>(extent.size()), extent.data());
    ds.read(out.data_ptr(), memory_type(dtype), memory_space, file_space);
    return out;
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": reading dataset '" + dataset + "': " + h5_message(e));
  }
}

bool Hdf5Reader::has_attribute(const std::string& name) const {
  try {
    return impl_->file.attrExists(name);
  } catch (const H5::Exception&) {
    return false;
  }
}

std::string Hdf5Reader::read_string_attribute(const std::string& name) const {
  try {
    if (!impl_->file.attrExists(name)) throw_data(path_ + ": missing attribute '" + name + "'");
    H5::Attribute attr = impl_->file.openAttribute(name);
    std::string value;
    attr.read(attr.getStrType(), value);
    return value;
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": attribute '" + name + "': " + h5_message(e));
  }
}


int64_t Hdf5Reader::read_int_attribute(const std::string& name) const {
  try {
    if (!impl_->file.attrExists(name)) throw_data(path_ + ": missing attribute '" + name + "'");
    H5::Attribute attr = impl_->file.openAttribute(name);
    if (attr.getTypeClass() != H5T_INTEGER) throw_data(path_ + ": attribute '" + name + "' is not an integer");
    int64_t value = 0;
    attr.read(H5::PredType::NATIVE_INT64, &value);
    return value;
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": attribute '" + name + "': " + h5_message(e));
  }
}

void Hdf5Reader::read_rows_into(const std::string& dataset, at::ScalarType dtype, int64_t start, int64_t count,
                                void* out) const {
  try {
    H5::DataSet ds = impl_->file.openDataSet(dataset);
    H5::DataSpace space = ds.getSpace();
    std::vector<hsize_t> dims(space.getSimpleExtentNdims());
    if (dims.empty()) throw_data(path_ + ": dataset '" + dataset + "' is a scalar");
    space.getSimpleExtentDims(dims.data());
    if (start < 0 || count < 0 || static_cast<hsize_t>(start + count) > dims[0]) {
      throw_data(path_ + ": dataset '" + dataset + "': rows " + std::to_string(start) + "+" + std::to_string(count) +
                 " outside 0.." + std::to_string(dims[0]));
    }
    if (count == 0) return;
    H5T_class_t stored = ds.getTypeClass();
    if (is_float(dtype) != (stored == H5T_FLOAT)) {
      throw_data(path_ + ": dataset '" + dataset + "' has the wrong type class for " + at::toString(dtype));
    }
    std::vector<hsize_t> offset(dims.size(), 0), extent = dims;
    offset[0] = static_cast<hsize_t>(start);
    extent[0] = static_cast<hsize_t>(count);
    space.selectHyperslab(H5S_SELECT_SET, extent.data(), offset.data());
    H5::DataSpace memory(static_cast<int>(extent.size()), extent.data());
    ds.read(out, memory_type(dtype), memory, space);
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": reading rows of '" + dataset + "': " + h5_message(e));
  }
}

std::vector<std::string> Hdf5Reader::read_strings(const std::string& dataset) const {
  std::vector<int64_t> dims = shape(dataset);
  if (dims.size() != 1) throw_data(path_ + ": dataset '" + dataset + "' must be 1-D strings");
  try {
    H5::DataSet ds = impl_->file.openDataSet(dataset);
    if (ds.getTypeClass() != H5T_STRING) throw_data(path_ + ": dataset '" + dataset + "' is not a string dataset");
    H5::StrType stored = ds.getStrType();
    std::vector<std::string> out(static_cast<size_t>(dims[0]));
    if (dims[0] == 0) return out;
    if (stored.isVariableStr()) {
      std::vector<char*> pointers(out.size(), nullptr);
      H5::StrType memory(H5::PredType::C_S1, H5T_VARIABLE);
      ds.read(pointers.data(), memory);
      for (size_t i = 0; i < out.size(); ++i) out[i] = pointers[i] ? pointers[i] : "";
      H5Dvlen_reclaim(memory.getId(), ds.getSpace().getId(), H5P_DEFAULT, pointers.data());
    } else {
      const size_t width = stored.getSize();
      std::vector<char> buffer(width * out.size());
      ds.read(buffer.data(), stored);
      for (size_t i = 0; i < out.size(); ++i) {
        const char* p = buffer.data() + i * width;
        out[i].assign(p, strnlen(p, width));
      }
    }
    return out;
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": reading strings '" + dataset + "': " + h5_message(e));
  }
}

struct Hdf5Writer::Impl {
  H5::H5File file;
  struct Appendable {
    H5::DataSet dataset;
    at::ScalarType dtype;
    std::vector<hsize_t> dims;  // current extent
    int64_t row_elements;
  };
  std::map<std::string, Appendable> appendables;
};

Hdf5Writer::Hdf5Writer(const std::string& path)
    : impl_(std::make_unique<Impl>()), path_(path), tmp_path_(path + ".tmp") {
  H5::Exception::dontPrint();
  try {
    impl_->file = H5::H5File(tmp_path_, H5F_ACC_TRUNC);
  } catch (const H5::Exception& e) {
    throw_io(tmp_path_ + ": cannot create HDF5 file (" + h5_message(e) + ")");
  }
}

Hdf5Writer::~Hdf5Writer() {
  if (committed_) return;
  try {
    impl_->appendables.clear();
    impl_->file.close();
  } catch (...) {
  }
  std::remove(tmp_path_.c_str());
}

void Hdf5Writer::write(const std::string& dataset, const at::Tensor& tensor, bool compress) {
  at::Tensor data = tensor.detach().to(at::kCPU).contiguous();
  std::vector<hsize_t> dims(data.sizes().begin(), data.sizes().end());
  try {
    H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
    H5::DSetCreatPropList props;
    if (compress && !dims.empty() && data.numel() > 0) {
      std::vector<hsize_t> chunk = dims;
      chunk[0] = std::min<hsize_t>(dims[0], 64);  // chunks of up to 64 leading rows
      props.setChunk(static_cast<int>(chunk.size()), chunk.data());
      props.setDeflate(4);
    }
    const H5::PredType& type = memory_type(data.scalar_type());
    H5::DataSet ds = impl_->file.createDataSet(dataset, type, space, props);
    if (data.numel() > 0) ds.write(data.data_ptr(), type);
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": writing dataset '" + dataset + "': " + h5_message(e));
  }
}

void Hdf5Writer::write_string_attribute(const std::string& name, const std::string& value) {
  try {
    H5::StrType type(H5::PredType::C_S1, value.empty() ? 1 : value.size());
    H5::Attribute attr = impl_->file.createAttribute(name, type, H5::DataSpace(H5S_SCALAR));
    attr.write(type, value);
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": writing attribute '" + name + "': " + h5_message(e));
  }
}

void Hdf5Writer::write_int_attribute(const std::string& name, int64_t value) {
  try {
    H5::Attribute attr = impl_->file.createAttribute(name, H5::PredType::STD_I64LE, H5::DataSpace(H5S_SCALAR));
    attr.write(H5::PredType::NATIVE_INT64, &value);
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": writing attribute '" + name + "': " + h5_message(e));
  }
}

void Hdf5Writer::write_strings(const std::string& dataset, const std::vector<std::string>& values) {
  size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size());
  std::vector<char> buffer(width * values.size(), 0);
  for (size_t i = 0; i < values.size(); ++i) std::memcpy(buffer.data() + i * width, values[i].data(), values[i].size());
  try {
    H5::StrType type(H5::PredType::C_S1, width);
    type.setStrpad(H5T_STR_NULLPAD);
    hsize_t dims[1] = {values.size()};
    H5::DataSpace space(1, dims);
    H5::DSetCreatPropList props;
    H5Pset_obj_track_times(props.getId(), 0);
    if (!values.empty()) {
      hsize_t chunk[1] = {std::min<hsize_t>(values.size(), std::max<hsize_t>(1, 65536 / width))};
      props.setChunk(1, chunk);
      props.setDeflate(4);
    }
    H5::DataSet ds = impl_->file.createDataSet(dataset, type, space, props);
    if (!values.empty()) ds.write(buffer.data(), type);
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": writing strings '" + dataset + "': " + h5_message(e));
  }
}

void Hdf5Writer::create_appendable(const std::string& dataset, at::ScalarType dtype,
                                   const std::vector<int64_t>& row_shape, int64_t chunk_rows, int deflate_level) {
  if (impl_->appendables.count(dataset)) throw_io(path_ + ": dataset '" + dataset + "' created twice");
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
  try {
    H5::DataSpace space(static_cast<int>(entry.dims.size()), entry.dims.data(), max_dims.data());
    H5::DSetCreatPropList props;
    H5Pset_obj_track_times(props.getId(), 0);
    props.setChunk(static_cast<int>(chunk.size()), chunk.data());
    if (deflate_level > 0) props.setDeflate(deflate_level);
    const H5::PredType& type = memory_type(dtype);
    entry.dataset = impl_->file.createDataSet(dataset, type, space, props);
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": creating dataset '" + dataset + "': " + h5_message(e));
  }
  impl_->appendables.emplace(dataset, std::move(entry));
}

void Hdf5Writer::append(const std::string& dataset, const void* data, int64_t rows) {
  auto it = impl_->appendables.find(dataset);
  if (it == impl_->appendables.end()) throw_io(path_ + ": append to '" + dataset + "' before create_appendable");
  if (rows <= 0) return;
  Impl::Appendable& entry = it->second;
  try {
    std::vector<hsize_t> offset(entry.dims.size(), 0), extent = entry.dims;
    offset[0] = entry.dims[0];
    extent[0] = static_cast<hsize_t>(rows);
    entry.dims[0] += static_cast<hsize_t>(rows);
    entry.dataset.extend(entry.dims.data());
    H5::DataSpace file_space = entry.dataset.getSpace();
    file_space.selectHyperslab(H5S_SELECT_SET, extent.data(), offset.data());
    H5::DataSpace memory(static_cast<int>(extent.size()), extent.data());
    entry.dataset.write(data, memory_type(entry.dtype), memory, file_space);
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": appending to '" + dataset + "': " + h5_message(e));
  }
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
  try {
    impl_->file.close();
  } catch (const H5::Exception& e) {
    throw_io(tmp_path_ + ": closing: " + h5_message(e));
  }
  commit_file(tmp_path_, path_);
  committed_ = true;
}

}  // namespace difffit
