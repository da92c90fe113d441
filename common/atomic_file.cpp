#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/run_folder.h"

namespace difffit {

void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void commit_file(const std::string& tmp, const std::string& path) {
  sync_file(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw_io(path + ": cannot rename from " + tmp + ": " + std::strerror(err));
  }
  // The rename lives in the directory: sync it too, so the new name survives a crash.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

std::string temporary_path_for(const std::string& path) {
  if (path.empty()) throw_usage("an output path is empty (its temporary would be ./.tmp)");
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw_io(path + ": exists and is not a regular file (a device, pipe or folder); difffit writes whole files "
             "through a temporary beside them and replaces only regular files: give a file path");
  // A link where the temporary goes (left there, or planted) is removed, never written through.
  const std::string tmp = path + ".tmp";
  if (std::filesystem::is_symlink(std::filesystem::symlink_status(tmp, ec))) std::filesystem::remove(tmp, ec);
  return tmp;
}

void check_output_path(const std::string& output, const std::string& flag, const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  if (output.empty()) throw_usage(flag + ": an empty path; name the file to write");
  std::error_code ec;
  for (const std::string& input : inputs) {
    if (input.empty()) continue;
    if (fs::equivalent(output, input, ec) && !ec)
      throw_usage(flag + " " + output + ": is also an input of this command (" + input +
                  "); write the output to another file");
    // The whole-file writers go through OUTPUT.tmp, which would replace the input first.
    if (fs::equivalent(output + ".tmp", input, ec) && !ec)
      throw_usage(flag + " " + output + ": its temporary " + output + ".tmp is an input of this command (" + input +
                  "); write the output to another file");
  }
  const fs::path path(output);
  const SweepFolder sweep{(path.has_parent_path() ? path.parent_path() : fs::path(".")).string()};
  if (!fs::exists(sweep.journal(), ec)) return;
  for (const std::string& state : {sweep.journal(), sweep.results(), sweep.lock(), sweep.summary()})
    if (path.filename() == fs::path(state).filename())
      throw_usage(flag + " " + output + ": is a sweep's own state file (the folder holds its journal); write the "
                  "output elsewhere");
}

void refuse_symlink(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_symlink(std::filesystem::symlink_status(path, ec)))
    throw_io(path + ": is a symbolic link; difffit does not write " + what + " through a link (it could point "
             "outside the output folder): remove it");
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  const std::string tmp = temporary_path_for(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << contents;
    if (!out.flush()) {
      std::remove(tmp.c_str());
      throw_io(tmp + ": cannot write");
    }
  }
  commit_file(tmp, path);
}

}  // namespace difffit
