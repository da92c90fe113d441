// Files that appear whole or not at all: write to PATH.tmp, then commit_file() makes
// the data durable (fsync) and renames it into place, so a crash never leaves a file
// under the final name that looks complete but is not.
#pragma once

#include <string>

namespace difffit {

// fsync `tmp`, rename it to `path`, fsync the directory; on failure removes `tmp` and
// throws an IO error.
void commit_file(const std::string& tmp, const std::string& path);

// fsync an existing file (e.g. an append-only log before a checkpoint that refers to it).
void sync_file(const std::string& path);

// Writes `contents` to path + ".tmp" and commits it.
void write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace difffit
