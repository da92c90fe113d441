// The machine-facing checks: which BLAS kernels to ask for, and what the BLAS reports.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "common/error.h"
#include "common/platform.h"
#include "common/torch_device.h"
#include "worker/model/dit_config.h"
#include "worker/sample/sample_config.h"

namespace difffit {
namespace {

CpuFeatures avx512() { return {true, true, false}; }
CpuFeatures avx2() { return {true, false, false}; }
CpuFeatures sse_only() { return {false, false, false}; }
CpuFeatures amx() { return {true, true, true}; }

TEST(BlasCore, GenericFallbackOnAvx512CpuAsksForSkylakeX) {
  EXPECT_EQ(blas_core_override("Prescott", avx512(), ""), "SkylakeX");
  EXPECT_EQ(blas_core_override("prescott", avx512(), ""), "SkylakeX");
  EXPECT_EQ(blas_core_override("Nehalem", avx512(), ""), "SkylakeX");
  EXPECT_EQ(blas_core_override("Sandybridge", avx512(), ""), "SkylakeX");
}

TEST(BlasCore, Avx2KernelsOnAvx512CpuAskForSkylakeX) {
  // OpenBLAS 0.3.21 gives AMD's AVX-512 CPUs (Zen 4) its Haswell kernels.
  EXPECT_EQ(blas_core_override("Haswell", avx512(), ""), "SkylakeX");
  EXPECT_EQ(blas_core_override("Zen", avx512(), ""), "SkylakeX");
  EXPECT_EQ(blas_core_override("Haswell", avx2(), ""), "");
}

TEST(BlasCore, GenericFallbackOnAvx2CpuAsksForHaswell) {
  EXPECT_EQ(blas_core_override("Prescott", avx2(), ""), "Haswell");
  EXPECT_EQ(blas_core_override("Core2", avx2(), ""), "Haswell");
}

TEST(BlasCore, KernelsThatSuitTheCpuAreKept) {
  for (const char* core : {"SkylakeX", "Cooperlake", "SapphireRapids"}) {
    EXPECT_EQ(blas_core_override(core, avx512(), ""), "") << core;
  }
  for (const char* core : {"Haswell", "Zen", "SkylakeX"}) EXPECT_EQ(blas_core_override(core, avx2(), ""), "") << core;
}

TEST(BlasCore, OldCpuKeepsGenericKernels) { EXPECT_EQ(blas_core_override("Prescott", sse_only(), ""), ""); }

TEST(BlasCore, NeverOverridesTheUsersChoice) {
  EXPECT_EQ(blas_core_override("Prescott", avx512(), "Prescott"), "");
  EXPECT_EQ(blas_core_override("Prescott", avx512(), "Haswell"), "");
}

TEST(BlasCore, NotOpenBlasMeansNothingToDo) { EXPECT_EQ(blas_core_override("", avx512(), ""), ""); }

TEST(AutoPrecision, Bf16OnlyWhereItIsFaster) {
  EXPECT_EQ(auto_precision(DeviceKind::Cuda, avx512()), Precision::Bf16);
  EXPECT_EQ(auto_precision(DeviceKind::Cpu, amx()), Precision::Bf16);
  EXPECT_EQ(auto_precision(DeviceKind::Cpu, avx512()), Precision::Fp32);
  EXPECT_EQ(auto_precision(DeviceKind::Cpu, sse_only()), Precision::Fp32);
}

TEST(TorchDevice, FlagsNameADeviceOrAreRefusedByName) {
  EXPECT_EQ(parse_torch_device("cpu", "--device"), c10::Device(c10::kCPU));
  EXPECT_EQ(parse_torch_device("cuda", "--device"), c10::Device(c10::kCUDA));
  EXPECT_EQ(parse_torch_device("cuda:1", "--device"), c10::Device(c10::kCUDA, 1));
  EXPECT_EQ(torch_device(DeviceKind::Cuda), c10::Device(c10::kCUDA));
  EXPECT_EQ(torch_device(DeviceKind::Cpu), c10::Device(c10::kCPU));
  for (const char* bad : {"gpu", "cuda:x", "cpu:1", "mps", ""}) {
    try {
      parse_torch_device(bad, "sample: --device");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("sample: --device: unknown device '" + std::string(bad) + "'"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(SampleSettings, ClippingDefaultsToPixelSpaceModelsOnly) {
  auto model = [](int64_t channels) {
    DiTConfig config;
    config.in_channels = channels;
    return config;
  };
  SampleConfig sample;
  EXPECT_TRUE(sample.clip_for(model(1).pixel_space()));
  EXPECT_TRUE(sample.clip_for(model(3).pixel_space()));
  EXPECT_FALSE(sample.clip_for(model(4).pixel_space()));  // latents: as DiT
  sample.clip_denoised = false;
  EXPECT_FALSE(sample.clip_for(model(1).pixel_space()));
  sample.clip_denoised = true;
  EXPECT_TRUE(sample.clip_for(model(4).pixel_space()));
}

// Checked against the libraries mapped into this process: Debian's LibTorch uses OpenBLAS
// (libopenblas0-pthread), PyTorch's own links MKL into itself and maps no OpenBLAS.
TEST(BlasInfo, ReportsTheLibraryInUse) {
  std::ifstream maps_file("/proc/self/maps");
  const std::string maps((std::istreambuf_iterator<char>(maps_file)), std::istreambuf_iterator<char>());
  const bool openblas_mapped = maps.find("openblas") != std::string::npos;
  const BlasInfo info = blas_info();
  if (openblas_mapped) {
    EXPECT_EQ(info.library.rfind("OpenBLAS", 0), 0u) << info.library;
    EXPECT_FALSE(info.core.empty());
    EXPECT_GE(info.threads, 1);
  } else {
    EXPECT_EQ(info.library, "unknown");
  }
}

}  // namespace
}  // namespace difffit
