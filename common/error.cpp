#include "common/error.h"

namespace difffit {

int Error::exit_code() const {
  switch (kind_) {
    case ErrorKind::Usage:
    case ErrorKind::Config:
      return 2;
    case ErrorKind::Data:
    case ErrorKind::IO:
      return 3;
    case ErrorKind::Internal:
      return 1;
  }
  return 1;
}

void throw_usage(const std::string& message) { throw Error(ErrorKind::Usage, message); }
void throw_config(const std::string& message) { throw Error(ErrorKind::Config, message); }
void throw_data(const std::string& message) { throw Error(ErrorKind::Data, message); }
void throw_io(const std::string& message) { throw Error(ErrorKind::IO, message); }

}  // namespace difffit
