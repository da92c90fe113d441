// The small DiTs the unit tests build (fast on one core): patch 2 on 8x8 inputs, one
// attention head per 16 channels; what a test depends on is in the arguments.
#pragma once

#include <cstdint>

#include "worker/model/dit_config.h"

namespace difffit::testing {

inline DiTConfig small_dit_config(int64_t depth, int64_t hidden_size, int64_t in_channels, int64_t num_classes) {
  DiTConfig c;
  c.depth = depth;
  c.hidden_size = hidden_size;
  c.num_heads = hidden_size / 16;
  c.patch_size = 2;
  c.input_size = 8;
  c.in_channels = in_channels;
  c.num_classes = num_classes;
  return c;
}

}  // namespace difffit::testing
