#include "common/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>

#include "common/atomic_file.h"
#include "common/error.h"

namespace difffit {

FileLock::FileLock(const std::string& path, const std::string& busy, ErrorKind kind) {
  // O_NOFOLLOW: a link planted in the lock's place is not written through.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0 && errno == ELOOP) refuse_symlink(path, "a lock file");
  if (fd_ < 0) throw_io(path + ": cannot open the lock file: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char holder[256] = {0};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    throw Error(kind, path + ": " + busy + (n > 0 ? " (" + std::string(holder, strnlen(holder, sizeof holder)) + ")" : "") +
                          "; wait for it to end, or stop it first");
  }
  // Who holds it, for the message above; the lock itself is what counts.
  char host[128] = "?";
  ::gethostname(host, sizeof host - 1);
  char since[32] = "";
  const std::time_t now = std::time(nullptr);
  std::strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  const std::string who = "pid " + std::to_string(::getpid()) + " on " + host + " since " + since;
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, who.data(), who.size(), 0) < 0) {
    // Without the note the lock still holds; only the message loses its detail.
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace difffit
