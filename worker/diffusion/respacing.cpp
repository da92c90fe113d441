#include "worker/diffusion/respacing.h"

#include <cmath>
#include <set>
#include <sstream>

#include "common/error.h"

namespace difffit {

std::vector<int64_t> space_timesteps(int64_t T, const std::string& spec) {
  std::set<int64_t> kept;
  if (spec.empty()) {
    for (int64_t t = 0; t < T; ++t) kept.insert(t);
    return {kept.begin(), kept.end()};
  }
  if (spec.rfind("ddim", 0) == 0) {
    int64_t desired = 0;
    try {
      desired = std::stoll(spec.substr(4));
    } catch (const std::logic_error&) {
      throw_usage("respacing '" + spec + "': expected ddimK");
    }
    for (int64_t stride = 1; stride < T; ++stride) {
      if ((T + stride - 1) / stride == desired) {
        for (int64_t t = 0; t < T; t += stride) kept.insert(t);
        return {kept.begin(), kept.end()};
      }
    }
    throw_usage("respacing '" + spec + "': no integer stride gives exactly " + std::to_string(desired) +
                " steps out of " + std::to_string(T));
  }
  std::vector<int64_t> counts;
  std::stringstream stream(spec);
  std::string item;
  while (std::getline(stream, item, ',')) {
    try {
      size_t used = 0;
      counts.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::logic_error&) {
      throw_usage("respacing '" + spec + "': '" + item + "' is not a step count");
    }
  }
  if (counts.empty()) throw_usage("respacing '" + spec + "' is empty");
  const int64_t sections = static_cast<int64_t>(counts.size());
  const int64_t size_per = T / sections, extra = T % sections;
  int64_t start = 0;
  for (int64_t i = 0; i < sections; ++i) {
    const int64_t size = size_per + (i < extra ? 1 : 0);
    const int64_t count = counts[i];
    if (count < 1 || size < count) {
      throw_usage("respacing '" + spec + "': cannot take " + std::to_string(count) + " steps from a section of " +
                  std::to_string(size));
    }
    const double stride = count <= 1 ? 1.0 : static_cast<double>(size - 1) / static_cast<double>(count - 1);
    double cur = 0.0;
    for (int64_t k = 0; k < count; ++k) {
      kept.insert(start + static_cast<int64_t>(std::nearbyint(cur)));  // ties to even, as Python's round
      cur += stride;
    }
    start += size;
  }
  return {kept.begin(), kept.end()};
}

}  // namespace difffit
