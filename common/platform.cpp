#include "common/platform.h"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <ATen/Parallel.h>

#include "common/error.h"
#include "common/logging.h"

namespace difffit {
namespace {

constexpr const char* kRestartedFrom = "DIFFFIT_BLAS_RESTARTED_FROM";  // set across the one re-exec

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

template <typename Fn>
Fn blas_symbol(const char* name) {
  return reinterpret_cast<Fn>(blas_function(name));
}

}  // namespace

void* blas_function(const char* name) { return dlsym(RTLD_DEFAULT, name); }

CpuFeatures detect_cpu_features() {
  CpuFeatures cpu;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  cpu.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  cpu.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
  // The kernel reports AMX in /proc/cpuinfo (it also gates its use); compilers' builtins may not know it.
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("flags", 0) == 0) {
      cpu.amx_bf16 = (line + " ").find(" amx_bf16 ") != std::string::npos;
      break;
    }
  }
  return cpu;
}

DeviceKind parse_device_kind(const std::string& name, const std::string& where) {
  if (name == "cpu") return DeviceKind::Cpu;
  if (name == "cuda") return DeviceKind::Cuda;
  throw_config(where + ": unknown device '" + name + "' (expected cpu or cuda)");
}

std::string device_kind_name(DeviceKind device) { return device == DeviceKind::Cuda ? "cuda" : "cpu"; }

Precision parse_precision(const std::string& name, const std::string& where, DeviceKind device) {
  if (name == "fp32") return Precision::Fp32;
  if (name == "bf16") return Precision::Bf16;
  if (name == "auto") return auto_precision(device, detect_cpu_features());
  throw_config(where + ": unknown precision '" + name + "' (expected auto, fp32 or bf16)");
}

std::string precision_name(Precision precision) { return precision == Precision::Bf16 ? "bf16" : "fp32"; }

Precision auto_precision(DeviceKind device, const CpuFeatures& cpu) {
  return device == DeviceKind::Cuda || cpu.amx_bf16 ? Precision::Bf16 : Precision::Fp32;
}

std::string blas_core_override(const std::string& chosen_core, const CpuFeatures& cpu, const std::string& user_core) {
  if (!user_core.empty() || chosen_core.empty()) return "";
  // OpenBLAS's x86-64 cores that predate AVX2: what it falls back to on a CPU it does not know.
  static const std::set<std::string> pre_avx2 = {"prescott", "core2",  "penryn",  "dunnington", "nehalem",
                                                 "atom",     "katmai", "coppermine", "northwood", "banias",
                                                 "sandybridge", "opteron", "barcelona", "bobcat", "bulldozer",
                                                 "piledriver", "steamroller"};
  // ... and those with AVX2 but no AVX-512 kernels (0.3.21 gives AMD's AVX-512 CPUs "Haswell").
  static const std::set<std::string> avx2_only = {"haswell", "zen", "excavator"};
  const std::string core = lower(chosen_core);
  if (cpu.avx512 && (pre_avx2.count(core) || avx2_only.count(core))) return "SkylakeX";
  if (cpu.avx2_fma && pre_avx2.count(core)) return "Haswell";
  return "";
}

BlasInfo blas_info() {
  BlasInfo info;
  using NameFn = char* (*)();
  using ThreadsFn = int (*)();
  auto corename = blas_symbol<NameFn>("openblas_get_corename");
  if (!corename) {
    info.library = "unknown";
    return info;
  }
  auto config = blas_symbol<NameFn>("openblas_get_config");
  info.library = config ? config() : "OpenBLAS";  // "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
  info.core = corename();
  if (auto threads = blas_symbol<ThreadsFn>("openblas_get_num_threads")) info.threads = threads();
  return info;
}

void ensure_cpu_settings(char** argv) {
  if (const char* from = std::getenv(kRestartedFrom)) {
    const char* core = std::getenv("OPENBLAS_CORETYPE");
    if (*from && core) {
      log()->info("[blas] OpenBLAS chose its {} kernels on this CPU; restarted with OPENBLAS_CORETYPE={} "
                  "(set OPENBLAS_CORETYPE yourself to choose)",
                  from, core);
    }
    unsetenv(kRestartedFrom);
    return;
  }
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  const BlasInfo info = blas_info();
  const CpuFeatures cpu = detect_cpu_features();
  const std::string better = blas_core_override(info.core, cpu, "");
  if (user && !better.empty()) {  // the user's choice stands; say when the CPU could do better
    log()->debug("[blas] OPENBLAS_CORETYPE={} is set, so OpenBLAS runs its {} kernels; this CPU supports {}", user,
                 info.core, better);
  }
  const std::string core = user ? "" : better;
  // A 2-thread mini-model training step: 447 ms with spinning OpenMP threads, 164 ms passive
  // (228 ms on one thread).
  const bool wait_policy = !std::getenv("OMP_WAIT_POLICY") && sysconf(_SC_NPROCESSORS_ONLN) > 1;
  if (core.empty() && !wait_policy) return;
  if (!core.empty()) setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  if (wait_policy) setenv("OMP_WAIT_POLICY", "passive", 1);
  setenv(kRestartedFrom, core.empty() ? "" : info.core.c_str(), 1);
  // The executable's own path, not /proc/self/exe: the loader derives $ORIGIN (a relocated
  // build's RUNPATH, scripts/gpu-bundle.sh) from the path it was started by.
  std::error_code error;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", error).string();
  execv(error ? "/proc/self/exe" : self.c_str(), argv);
  // exec failed: carry on with the settings we have, and say so.
  unsetenv(kRestartedFrom);
  if (!core.empty()) {
    log()->warn("[blas] OpenBLAS runs its {} kernels on a CPU that supports {}: set OPENBLAS_CORETYPE={} "
                "for 2-5x faster matrix products",
                info.core, core == "SkylakeX" ? "AVX-512" : "AVX2", core);
  }
}

int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

bool exceeds_memory(double bytes) {
  const int64_t memory = physical_memory_bytes();
  return memory > 0 && bytes > static_cast<double>(memory);
}

void set_compute_threads(int threads) {
  if (threads < 1 || threads > kMaxComputeThreads)
    throw_usage("--threads must be in 1.." + std::to_string(kMaxComputeThreads));
  at::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto set_blas = blas_symbol<SetThreads>("openblas_set_num_threads")) set_blas(threads);
}

void keep_freed_memory() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::string(tunables).find("malloc") != std::string::npos) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

long long peak_memory_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

void reset_peak_memory() {
  malloc_trim(0);  // hand back what keep_freed_memory() kept, or the last peak would carry over
  std::ofstream("/proc/self/clear_refs") << "5";
}

}  // namespace difffit
