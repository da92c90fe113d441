#pragma once

#include <cstdint>
#include <cstring>

// What difffit's CPU kernels share. Their loops are plain float code compiled with
// -ffp-contract=off (worker/CMakeLists.txt), so every clone rounds alike.

// Clones of a kernel for AVX-512, AVX2 and generic x86-64, picked at load time by the CPU;
// elsewhere (e.g. aarch64) the one generic build.
#if defined(__x86_64__)
#define DIFFFIT_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DIFFFIT_CPU_CLONES
#endif

namespace difffit {

// e^z for z clamped to [-80, 80] (no overflow, no denormals): Cody-Waite reduction by ln 2 and
// Cephes' degree-6 polynomial for expf (< 2 ulp). Plain float arithmetic, so loops calling it
// vectorise.
inline float exp_clamped(float z) {
  z = z < -80.f ? -80.f : z;
  z = z > 80.f ? 80.f : z;
  const float shifter = 12582912.f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const float n = (z * 1.44269504088896341f + shifter) - shifter;
  float r = z - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace difffit
