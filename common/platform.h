// What this machine offers and how to use it best: CPU features, the BLAS kernels LibTorch
// runs (Debian 12's OpenBLAS 0.3.21 does not recognise recent CPUs and falls back to its
// generic "Prescott" SSE3 kernels, 4-5x slower than its AVX-512 ones), the fastest precision.
#pragma once

#include <cstdint>
#include <string>

namespace difffit {

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 and FMA: OpenBLAS's Haswell kernels
  bool avx512 = false;    // AVX-512 F, BW, DQ and VL: its SkylakeX kernels
  bool amx_bf16 = false;  // AMX tiles with bf16: where CPU bf16 matrix products beat fp32
};

CpuFeatures detect_cpu_features();

// The OPENBLAS_CORETYPE that gives this CPU the kernels it supports, or "" when the chosen
// core already uses them (or is unknown to this check, or `user_core` is set: never override).
std::string blas_core_override(const std::string& chosen_core, const CpuFeatures& cpu, const std::string& user_core);

// Where training and sampling run, and in which precision: closed sets parsed once where
// they come in (errors name `where` and the valid names).
enum class DeviceKind { Cpu, Cuda };
DeviceKind parse_device_kind(const std::string& name, const std::string& where);  // "cpu" | "cuda"
std::string device_kind_name(DeviceKind device);

enum class Precision { Fp32, Bf16 };  // fp32: exact; bf16: autocast
// "fp32" | "bf16", or "auto" resolved for `device` on this machine with auto_precision.
Precision parse_precision(const std::string& name, const std::string& where, DeviceKind device);
std::string precision_name(Precision precision);

// "auto": bf16 on CUDA and on CPUs with AMX, fp32 elsewhere (on AVX-512 BF16 without AMX,
// bf16 autocast measured slower than fp32 for small models).
Precision auto_precision(DeviceKind device, const CpuFeatures& cpu);

struct BlasInfo {
  std::string library;  // "OpenBLAS" with its build configuration, or "unknown" (not OpenBLAS)
  std::string core;     // the kernels OpenBLAS chose ("SkylakeX", "Prescott"), or ""
  int threads = 0;      // OpenBLAS's own thread count (0 when unknown)
};

BlasInfo blas_info();

// A function of the BLAS that LibTorch links (found by name at run time), nullptr when absent.
void* blas_function(const char* name);

// Called first thing in main(): re-executes this program once with the settings that the
// libraries read only when they load, where they are not set already: OPENBLAS_CORETYPE where
// OpenBLAS chose kernels below what the CPU supports (its generic ones on an AVX2 CPU, AVX2
// ones on an AVX-512 CPU; logged in the restarted process), and OMP_WAIT_POLICY=passive on a
// multi-core machine (ATen's OpenMP threads otherwise spin after each parallel region and take
// the cores from OpenBLAS's own threads in the next matrix product).
void ensure_cpu_settings(char** argv);

// Called first thing in main(): glibc's malloc hands blocks above 128 KiB back to the kernel
// when they are freed and trims the heap top, so every training step faults its activations'
// pages in again (zeroed by the kernel): about a tenth of a small model's CPU step. Blocks up
// to 32 MiB then come from the heap, and up to 1 GiB of freed heap is kept for the next
// step. Left alone when GLIBC_TUNABLES sets malloc tunables (the user's choice wins).
void keep_freed_memory();

// This process's peak resident memory (VmHWM) in bytes, -1 when unknown;
// reset_peak_memory() restarts it (Linux >= 4.0).
long long peak_memory_bytes();
void reset_peak_memory();

// This machine's physical memory in bytes (0 when unknown).
int64_t physical_memory_bytes();
// Whether `bytes` exceed it (false when unknown): a bound for sizes that come from input,
// checked before they reach the allocator.
bool exceeds_memory(double bytes);

// Intra-op threads for LibTorch and for OpenBLAS (Debian's ignores LibTorch's setting).
// Throws Usage when threads is outside 1..kMaxComputeThreads.
constexpr int kMaxComputeThreads = 1024;
void set_compute_threads(int threads);

}  // namespace difffit
