// Names that users give and the pipeline turns into folder names or HDF5 dataset names.
#pragma once

#include <algorithm>
#include <string>

namespace difffit {

// Usable inside a folder's name: no separators, nothing unprintable.
inline bool usable_in_folder_name(const std::string& part) {
  return std::none_of(part.begin(), part.end(),
                      [](unsigned char c) { return c == '/' || c == '\\' || c < 0x20 || c == 0x7f; });
}

// Usable as one folder name inside an output folder: not empty, no separators, no leading
// '.' (so neither "." nor ".."), nothing unprintable.
inline bool usable_folder_name(const std::string& name) {
  return !name.empty() && name[0] != '.' && usable_in_folder_name(name);
}

constexpr const char* kFolderNameRule = "no '/', '\\', control characters or leading '.'";

// Usable as an HDF5 dataset name in one group (a results column).
inline bool usable_column_name(const std::string& name) {
  return !name.empty() && name != "." && name.find('/') == std::string::npos;
}

}  // namespace difffit
