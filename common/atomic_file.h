// Files that appear whole or not at all: write to PATH.tmp, then commit_file() makes
// the data durable (fsync) and renames it into place, so a crash never leaves a file
// under the final name that looks complete but is not.
#pragma once

#include <string>
#include <vector>

namespace difffit {

// The temporary beside `path` that its writer fills before commit_file. A `path` that
// exists and is not a regular file (a device such as /dev/null, a pipe, a folder) is an IO
// error naming it, before anything is created: renaming over it would replace what difffit
// did not create, and the temporary would land beside a device.
std::string temporary_path_for(const std::string& path);

// A command's output must not replace one of its own inputs (`results table R.h5 -o R.h5`,
// or `-o R` for an input R.tmp: the output's temporary) nor a sweep's state (its journal, results store, lock or summary: the folder holding a
// journal.jsonl): a usage error naming `flag` and the file, before anything is written.
// Inputs that do not exist, and "" entries, are passed over.
void check_output_path(const std::string& output, const std::string& flag, const std::vector<std::string>& inputs);

// Files difffit writes in place (appended logs, lock files) are refused when a symbolic link
// stands at `path`: writing through it would change a file outside the output folder. An IO
// error naming `path` and `what`.
void refuse_symlink(const std::string& path, const std::string& what);

// fsync `tmp`, rename it to `path`, fsync the directory; on failure removes `tmp` and
// throws an IO error.
void commit_file(const std::string& tmp, const std::string& path);

// fsync an existing file (e.g. an append-only log before a checkpoint that refers to it).
void sync_file(const std::string& path);

// Writes `contents` to path + ".tmp" and commits it.
void write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace difffit
