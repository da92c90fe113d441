// Every file difffit reads is checked here before it is opened: opening a named pipe
// blocks until a writer comes (for ever), a device such as /dev/zero never ends, and a
// text file read whole must fit in memory. One home for those checks and the limits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <string>

namespace difffit {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
// Inputs read whole into memory. Generous: real files are far smaller.
constexpr std::uint64_t kConfigFileLimit = 16 * kMiB;    // YAML experiment and sweep files
constexpr std::uint64_t kJsonFileLimit = 16 * kMiB;      // config.json, metrics.json, summaries
constexpr std::uint64_t kTextLineLimit = 16 * kMiB;      // one line of the journal or of a CSV file
constexpr std::uint64_t kImageFileLimit = 1024 * kMiB;   // one PNG or JPEG file
constexpr std::uint64_t kListingFileLimit = 1024 * kMiB; // a dataset's annotation files (text, .mat)
// HDF5, checkpoints and logs are read in parts: only the file type is checked.
constexpr std::uint64_t kNoSizeLimit = std::numeric_limits<std::uint64_t>::max();

// Checks, without opening it, that `path` is a regular file of at most `max_bytes`, and
// returns its size. Otherwise an IO error naming it: "PATH: cannot read WHAT: No such
// file or directory", "PATH: is a named pipe (FIFO); expected WHAT", "PATH: is 17825792
// bytes, over the 16 MiB limit for WHAT". `what` reads "a YAML file", "an HDF5 file".
std::uint64_t check_input_file(const std::string& path, const std::string& what,
                               std::uint64_t max_bytes = kNoSizeLimit);

// The same for inputs that may be absent: false when nothing is at `path`.
bool check_input_file_if_present(const std::string& path, const std::string& what,
                                 std::uint64_t max_bytes = kNoSizeLimit);

// check_input_file, then the whole file. The file is opened non-blocking and checked
// again once open, so a pipe put in its place meanwhile cannot block either.
std::string read_input_file(const std::string& path, const std::string& what, std::uint64_t max_bytes);

// check_input_file, then the file in chunks of up to `chunk_bytes`, each passed to
// `consume` (hashing a file of any size in constant memory). A read error is an IO error
// naming the file and `what`.
void read_file_chunks(const std::string& path, const std::string& what,
                      const std::function<void(const char* data, std::size_t size)>& consume,
                      std::size_t chunk_bytes = 8 * kMiB);

// std::getline that stops at `max_bytes`: false at the end of the input; a longer line is
// a Data error naming `where` (FILE:LINE) and the limit.
bool read_bounded_line(std::istream& in, std::string& line, const std::string& where,
                       std::uint64_t max_bytes = kTextLineLimit);

}  // namespace difffit
