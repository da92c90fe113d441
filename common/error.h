// The project's error type. Libraries throw it with context; the command line
// catches it and turns its kind into an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace difffit {

enum class ErrorKind {
  Usage,     // bad command line or config value      -> exit 2
  Config,    // invalid config file or field           -> exit 2
  Data,      // bad input data, checkpoint or file     -> exit 3
  IO,        // file system / HDF5 failure              -> exit 3
  Internal,  // a bug or unexpected state               -> exit 1
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const;

 private:
  ErrorKind kind_;
};

// Shorthands that read well at the throw site.
[[noreturn]] void throw_usage(const std::string& message);
[[noreturn]] void throw_config(const std::string& message);
[[noreturn]] void throw_data(const std::string& message);
[[noreturn]] void throw_io(const std::string& message);

}  // namespace difffit
