// Peak GPU memory of this process's current CUDA device, as LibTorch's caching allocator
// counts it (torch.cuda.max_memory_allocated). Without a CUDA LibTorch: -1.
#pragma once

#include <cstdint>

namespace difffit {

int64_t gpu_peak_allocated_bytes();
void reset_gpu_peak();

}  // namespace difffit
