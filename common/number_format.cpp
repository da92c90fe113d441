#include "common/number_format.h"

#include <charconv>

namespace difffit {

std::string shortest_double(double value) {
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, result.ptr);
}

namespace {
template <typename T>
bool parse_whole_as(std::string_view text, T& value) {
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  return !text.empty() && error == std::errc() && stop == end;
}
}  // namespace

bool parse_whole(std::string_view text, int64_t& value) { return parse_whole_as(text, value); }
bool parse_whole(std::string_view text, double& value) { return parse_whole_as(text, value); }

}  // namespace difffit
