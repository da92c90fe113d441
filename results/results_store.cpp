#include "results/results_store.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/json_text.h"
#include "common/hdf5_handles.h"
#include "common/names.h"
#include "common/platform.h"
#include "results/result_columns.h"

namespace difffit {
namespace {

using hdf5::Handle;

void check_column_names(const std::string& path, const std::vector<std::string>& text,
                        const std::vector<std::string>& numeric) {
  const std::set<std::string> text_set(text.begin(), text.end());
  for (const auto* names : {&text, &numeric}) {
    for (const std::string& name : *names) {
      if (!usable_column_name(name))
        throw_data(path + ": column name '" + name + "' cannot be an HDF5 dataset name");
    }
  }
  for (const std::string& name : numeric) {
    if (text_set.count(name)) throw_data(path + ": column '" + name + "' is both a text and a numeric column");
  }
}

// Writes one column; returns false on an HDF5 failure (the message is on the error stack).
bool write_text_column(hid_t group, const std::string& name, const std::vector<ResultRow>& rows) {
  std::vector<std::string> texts;
  texts.reserve(rows.size());
  for (const ResultRow& row : rows) texts.push_back(text_value(row, name));
  const hdf5::FixedWidthStrings values = hdf5::fixed_width_strings(texts);
  const hsize_t n = rows.size();
  Handle type(hdf5::utf8_string_type(values.width), H5Tclose);
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle ds(H5Dcreate2(group, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) return false;
  return n == 0 || H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.bytes.data()) >= 0;
}

bool write_numeric_column(hid_t group, const std::string& name, const std::vector<ResultRow>& rows) {
  std::vector<double> values;
  values.reserve(rows.size());
  for (const ResultRow& row : rows) values.push_back(number_value(row, name));
  const hsize_t n = rows.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle ds(H5Dcreate2(group, name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose);
  if (!ds.valid()) return false;
  return n == 0 || H5Dwrite(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0;
}

bool write_string_attribute(hid_t object, const std::string& name, const std::string& value) {
  const hdf5::FixedWidthStrings data = hdf5::fixed_width_strings({value});
  Handle type(hdf5::utf8_string_type(data.width), H5Tclose);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  return attr.valid() && H5Awrite(attr.get(), type.get(), data.bytes.data()) >= 0;
}

// One table as a group of columns; false on an HDF5 failure.
bool write_table(hid_t file, const std::string& group_name, const std::vector<ResultRow>& rows,
                 std::string& failed_at) {
  const std::vector<std::string> text = text_columns(rows), numeric = numeric_columns(rows);
  failed_at = "group /" + group_name;
  Handle group(H5Gcreate2(file, group_name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!group.valid()) return false;
  for (const std::string& name : text) {
    failed_at = "dataset /" + group_name + "/" + name;
    if (!write_text_column(group.get(), name, rows)) return false;
  }
  for (const std::string& name : numeric) {
    failed_at = "dataset /" + group_name + "/" + name;
    if (!write_numeric_column(group.get(), name, rows)) return false;
  }
  return true;
}

// Everything under the (already created) temporary file; false on an HDF5 failure.
bool write_contents(hid_t file, const std::vector<ResultRow>& rows, const std::vector<ResultRow>& curves,
                    const std::map<std::string, std::string>& attributes, std::string& failed_at) {
  for (const auto& [name, value] : attributes) {
    if (name == "format") continue;
    failed_at = "attribute '" + name + "'";
    if (!write_string_attribute(file, name, value)) return false;
  }
  failed_at = "attribute 'format'";
  if (!write_string_attribute(file, "format", kResultsFormat)) return false;
  if (!write_table(file, "runs", rows, failed_at)) return false;
  return curves.empty() || write_table(file, "curves", curves, failed_at);
}

}  // namespace

void write_results_h5(const std::string& path, const std::vector<ResultRow>& rows,
                      const std::map<std::string, std::string>& attributes, const std::vector<ResultRow>& curves) {
  check_column_names(path, text_columns(rows), numeric_columns(rows));
  check_column_names(path, text_columns(curves), numeric_columns(curves));
  const std::string tmp = temporary_path_for(path);
  hdf5::QuietErrors quiet;
  // Default access properties, so HDF5_USE_FILE_LOCKING from the environment applies.
  Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) throw_io(tmp + ": cannot create HDF5 file (" + hdf5::last_error() + ")");
  std::string failed_at, failure;
  if (!write_contents(file.get(), rows, curves, attributes, failed_at))
    failure = "writing " + failed_at + " failed (" + hdf5::last_error() + ")";
  if (file.close() < 0 && failure.empty()) failure = "closing failed (" + hdf5::last_error() + ")";
  if (!failure.empty()) {
    std::remove(tmp.c_str());  // the previous results file is untouched
    throw_io(tmp + ": " + failure);
  }
  commit_file(tmp, path);
}

namespace {

// Strings of a dataset or attribute of string type (variable or fixed length, any cset).
// Bytes that are not UTF-8 (a file written elsewhere) become U+FFFD: every table, chart and
// page made from them stays well-formed.
template <typename Read>
bool read_strings(hid_t stored_type, hid_t space, size_t n, Read read, std::vector<std::string>& out) {
  out.assign(n, "");
  if (n == 0) return true;
  Handle memory(H5Tcopy(stored_type), H5Tclose);
  if (H5Tis_variable_str(stored_type) > 0) {
    std::vector<char*> pointers(n, nullptr);
    if (read(memory.get(), pointers.data()) < 0) return false;
    for (size_t i = 0; i < n; ++i) out[i] = utf8_or_replaced(pointers[i] ? pointers[i] : "");
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(memory.get(), space, H5P_DEFAULT, pointers.data());
#else
    H5Dvlen_reclaim(memory.get(), space, H5P_DEFAULT, pointers.data());
#endif
    return true;
  }
  const size_t width = H5Tget_size(stored_type);
  std::vector<char> buffer(width * n);
  if (read(memory.get(), buffer.data()) < 0) return false;
  for (size_t i = 0; i < n; ++i)
    out[i] = utf8_or_replaced(std::string(buffer.data() + i * width, strnlen(buffer.data() + i * width, width)));
  return true;
}

// Root attributes of string type (others are skipped).
std::map<std::string, std::string> read_string_attributes(hid_t file, const std::string& path) {
  struct Context {
    std::map<std::string, std::string> values;
    std::string failed;
  } context;
  auto visit = [](hid_t location, const char* name, const H5A_info_t*, void* data) -> herr_t {
    auto& ctx = *static_cast<Context*>(data);
    Handle attr(H5Aopen(location, name, H5P_DEFAULT), H5Aclose);
    Handle type(H5Aget_type(attr.get()), H5Tclose);
    Handle space(H5Aget_space(attr.get()), H5Sclose);
    if (!attr.valid() || H5Tget_class(type.get()) != H5T_STRING || H5Sget_simple_extent_npoints(space.get()) != 1)
      return 0;
    std::vector<std::string> value;
    const hid_t id = attr.get();
    if (!read_strings(type.get(), space.get(), 1, [id](hid_t t, void* buf) { return H5Aread(id, t, buf); }, value)) {
      ctx.failed = name;
      return -1;
    }
    ctx.values[name] = value[0];
    return 0;
  };
  if (H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, nullptr, visit, &context) < 0)
    throw_io(path + ": reading root attribute '" + context.failed + "' (" + hdf5::last_error() + ")");
  return context.values;
}

std::string link_name(hid_t group, hsize_t index) {
  const ssize_t size = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, nullptr, 0, H5P_DEFAULT);
  if (size < 0) return "";
  std::string name(static_cast<size_t>(size) + 1, '\0');
  H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, name.data(), name.size(), H5P_DEFAULT);
  name.resize(static_cast<size_t>(size));
  return name;
}

// Reads /GROUP/NAME into every row; `rows` is sized by the first column read.
void read_column(hid_t group, const std::string& path, const std::string& group_name, const std::string& name,
                 bool first, std::vector<ResultRow>& rows) {
  const std::string where = path + ": dataset /" + group_name + "/" + name;
  if (H5Oexists_by_name(group, name.c_str(), H5P_DEFAULT) <= 0) throw_data(where + " cannot be opened");
  Handle ds(H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) throw_data(where + " is not a dataset");
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) throw_data(where + " must be 1-D (one entry per row)");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  // A row in memory takes a few hundred bytes: a damaged extent must not reach the allocator.
  constexpr double kRowBytes = 256;
  if (exceeds_memory(static_cast<double>(n) * kRowBytes))
    throw_data(where + " declares " + std::to_string(n) + " rows, more than this machine's memory holds");
  if (first) rows.resize(n);
  if (n != rows.size())
    throw_data(where + " has " + std::to_string(n) + " entries, the columns before it " + std::to_string(rows.size()));
  const hid_t id = ds.get();
  auto read = [id](hid_t memory, void* buf) { return H5Dread(id, memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); };
  switch (H5Tget_class(type.get())) {
    case H5T_STRING: {
      if (!H5Tis_variable_str(type.get()) && exceeds_memory(static_cast<double>(H5Tget_size(type.get())) * n))
        throw_data(where + ": " + std::to_string(n) + " strings of " + std::to_string(H5Tget_size(type.get())) +
                   " bytes, more than this machine's memory holds");
      std::vector<std::string> values;
      if (!read_strings(type.get(), space.get(), n, read, values)) throw_io(where + ": " + hdf5::last_error());
      for (size_t i = 0; i < n; ++i) rows[i].text[name] = std::move(values[i]);
      return;
    }
    case H5T_FLOAT:
    case H5T_INTEGER: {
      std::vector<double> values(n);
      if (n > 0 && read(H5T_NATIVE_DOUBLE, values.data()) < 0) throw_io(where + ": " + hdf5::last_error());
      for (size_t i = 0; i < n; ++i) rows[i].numbers[name] = values[i];
      return;
    }
    default:
      throw_data(where + " must hold strings or numbers");
  }
}

}  // namespace

namespace {

// The table /GROUP of a results file; `attributes` (when given) gets the root's strings.
// A missing group is an error when `required`, else no rows.
std::vector<ResultRow> read_table(const std::string& path, const std::string& group_name, bool required,
                                  std::map<std::string, std::string>* attributes) {
  if (!check_input_file_if_present(path, "a results file (HDF5)")) throw_io(path + ": no such results file");
  hdf5::QuietErrors quiet;
  if (H5Fis_hdf5(path.c_str()) <= 0) throw_data(path + ": not an HDF5 file");
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) throw_io(path + ": cannot open (" + hdf5::last_error() + ")");
  std::map<std::string, std::string> attrs = read_string_attributes(file.get(), path);
  const auto format = attrs.find("format");
  if (format == attrs.end()) throw_data(path + ": not a difffit results file (no root attribute 'format')");
  if (format->second != kResultsFormat)
    throw_data(path + ": results format '" + format->second + "', this build reads '" + kResultsFormat + "'");
  if (attributes) *attributes = attrs;
  if (H5Lexists(file.get(), group_name.c_str(), H5P_DEFAULT) <= 0) {
    if (required) throw_data(path + ": missing group /" + group_name);
    return {};
  }
  Handle group(H5Gopen2(file.get(), group_name.c_str(), H5P_DEFAULT), H5Gclose);
  H5G_info_t info;
  if (!group.valid() || H5Gget_info(group.get(), &info) < 0)
    throw_data(path + ": /" + group_name + " is not a group (" + hdf5::last_error() + ")");
  std::vector<ResultRow> rows;
  for (hsize_t i = 0; i < info.nlinks; ++i)
    read_column(group.get(), path, group_name, link_name(group.get(), i), i == 0, rows);
  return rows;
}

}  // namespace

std::vector<ResultRow> read_results_h5(const std::string& path, std::map<std::string, std::string>* attributes) {
  return read_table(path, "runs", true, attributes);
}

std::vector<ResultRow> read_results_curves(const std::string& path) { return read_table(path, "curves", false, nullptr); }

}  // namespace difffit
