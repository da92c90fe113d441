#include "common/gpu_memory.h"

#if DIFFFIT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace difffit {

#if DIFFFIT_WITH_CUDA
// Index 0 of the allocator's stat arrays is the aggregate over pool types (1.13 and 2.x).
int64_t gpu_peak_allocated_bytes() {
  if (c10::cuda::device_count() == 0) return -1;
  return c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device()).allocated_bytes[0].peak;
}
void reset_gpu_peak() {
  if (c10::cuda::device_count() > 0) c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
}
#else
int64_t gpu_peak_allocated_bytes() { return -1; }
void reset_gpu_peak() {}
#endif

}  // namespace difffit
