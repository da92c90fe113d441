// Numbers as text that reads back to the same double, in the fewest digits ("0.0003",
// not "0.00029999999999999997"): config files, run ids and metadata stay readable.
#pragma once

#include <string>

namespace difffit {

std::string shortest_double(double value);

}  // namespace difffit
