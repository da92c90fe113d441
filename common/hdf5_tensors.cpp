#include "common/hdf5_tensors.h"

#include <ATen/ATen.h>
#include <H5Cpp.h>

#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

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

std::string h5_message(const H5::Exception& e) { return e.getDetailMsg(); }

void fsync_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

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
    H5T_class_t stored = ds.getTypeClass();
    bool want_float = is_float(dtype);
    if ((want_float && stored != H5T_FLOAT) || (!want_float && stored != H5T_INTEGER)) {
      throw_data(path_ + ": dataset '" + dataset + "' must be " +
                 (want_float ? "floating point" : "integer") + " (" + at::toString(dtype) + ")");
    }
    at::Tensor out = at::empty(dims, at::TensorOptions().dtype(dtype));
    if (out.numel() > 0) ds.read(out.data_ptr(), memory_type(dtype));
    return out;
  } catch (const H5::Exception& e) {
    throw_io(path_ + ": reading dataset '" + dataset + "': " + h5_message(e));
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

struct Hdf5Writer::Impl {
  H5::H5File file;
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

void Hdf5Writer::commit() {
  try {
    impl_->file.close();
  } catch (const H5::Exception& e) {
    throw_io(tmp_path_ + ": closing: " + h5_message(e));
  }
  fsync_file(tmp_path_);
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    throw_io("cannot rename " + tmp_path_ + " to " + path_);
  }
  committed_ = true;
}

}  // namespace difffit
