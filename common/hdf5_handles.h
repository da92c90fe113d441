// Small RAII pieces over the HDF5 C API, the one way difffit uses HDF5 (tensor files, the
// image loader, the results store, the .mat v7.3 reader).
#pragma once

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace difffit::hdf5 {

// Closes an HDF5 identifier at the end of its scope.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      close();
      id_ = other.id_;
      closer_ = other.closer_;
      other.id_ = -1;
    }
    return *this;
  }
  ~Handle() { close(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  herr_t close() {
    herr_t status = 0;
    if (id_ >= 0) status = closer_(id_);
    id_ = -1;
    return status;
  }

 private:
  hid_t id_;
  Closer closer_;
};

// Failures are reported through return codes and difffit::Error; HDF5's own printing to
// stderr is muted for the scope and restored afterwards.
class QuietErrors {
 public:
  QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// Turns HDF5's printing of errors to stderr off for good (what failed is reported through
// difffit::Error, with last_error()).
inline void silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// The innermost message on HDF5's error stack, e.g. "unable to open file: ... errno = 2".
inline std::string last_error() {
  std::string message;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
        return 0;
      },
      &message);
  return message.empty() ? "HDF5 error" : message;
}

// Strings laid out for a fixed-length string type: each in `width` bytes (the longest
// string's, at least 1), padded with NULs.
struct FixedWidthStrings {
  size_t width = 1;
  std::vector<char> bytes;
};
inline FixedWidthStrings fixed_width_strings(const std::vector<std::string>& values) {
  FixedWidthStrings out;
  for (const std::string& v : values) out.width = std::max(out.width, v.size());
  out.bytes.assign(out.width * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) std::memcpy(out.bytes.data() + i * out.width, values[i].data(), values[i].size());
  return out;
}

// Fixed-length UTF-8 strings of `width` bytes, padded with NULs (h5py: .asstr()). Not
// variable-length: those live in HDF5's global heap, and libhdf5 1.10 copies a damaged heap
// entry without a bounds check (a crash, not an error); a fixed-length string is plain data.
inline hid_t utf8_string_type(size_t width) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, width > 0 ? width : 1);
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return type;
}

}  // namespace difffit::hdf5
