// An exclusive lock on a file (flock), held for the object's lifetime: one sweep per state
// folder, one process per run folder. The kernel releases it when the process dies, so a
// killed job never leaves a stale lock behind.
#pragma once

#include <string>

#include "common/error.h"

namespace difffit {

class FileLock {
 public:
  // Throws an error of kind `kind` naming the file, `busy` and the holder (pid, host, start
  // time) when another process holds it.
  explicit FileLock(const std::string& path, const std::string& busy = "another sweep is running on this folder",
                    ErrorKind kind = ErrorKind::Usage);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace difffit
