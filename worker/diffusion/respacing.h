// Timestep respacing exactly as the reference's space_timesteps: which of the T
// original timesteps a shortened process keeps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace difffit {

// `spec`: "" (all T), "K" or "K1,K2,..." (sections, evenly strided, first and last of
// each section included, Python round-half-even), or "ddimK" (integer stride s with
// len(range(0, T, s)) == K). Returns the kept timesteps in increasing order.
std::vector<int64_t> space_timesteps(int64_t num_timesteps, const std::string& spec);

}  // namespace difffit
