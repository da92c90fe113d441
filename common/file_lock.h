// An exclusive lock on a file (flock), held for the object's lifetime: one sweep per state
// folder at a time. The kernel releases it when the process dies, so a killed job never
// leaves a stale lock behind.
#pragma once

#include <string>

namespace difffit {

class FileLock {
 public:
  // Throws a usage error naming the file and the holder (pid, host, start time) when another
  // process holds it.
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace difffit
