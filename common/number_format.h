// Numbers as text and back: the shortest text that reads back to the same double ("0.0003",
// not "0.00029999999999999997"), so config files, run ids and metadata stay readable; and
// text read as a number only when all of it is one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace difffit {

std::string shortest_double(double value);

// `text` whole as a number (std::from_chars: no blanks, no '+', nothing after it, in range);
// false otherwise, `value` then unspecified.
bool parse_whole(std::string_view text, int64_t& value);
bool parse_whole(std::string_view text, double& value);

}  // namespace difffit
