#include "worker/model/autocast_guard.h"

#include <ATen/autocast_mode.h>

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

// LibTorch 2.4 replaced the per-device autocast functions with device-type arguments.
#if defined(TORCH_VERSION_MAJOR) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
#define DIFFFIT_AUTOCAST_BY_DEVICE 1
#endif

namespace difffit {

bool autocast_enabled(c10::DeviceType device) {
#ifdef DIFFFIT_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

namespace {

void set_autocast(c10::DeviceType device, bool enabled) {
#ifdef DIFFFIT_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(device, at::kBFloat16);
  at::autocast::set_autocast_enabled(device, enabled);
#else
  if (device == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

}  // namespace

AutocastGuard::AutocastGuard(bool enabled, c10::DeviceType device) : enabled_(enabled), device_(device) {
  if (!enabled_) return;
  previous_ = autocast_enabled(device_);
  set_autocast(device_, true);
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  set_autocast(device_, previous_);
  at::autocast::clear_cache();
}

}  // namespace difffit
