#include "worker/train/autocast_guard.h"

#include <ATen/autocast_mode.h>

namespace difffit {

AutocastGuard::AutocastGuard(bool enabled, c10::DeviceType device) : enabled_(enabled), device_(device) {
  if (!enabled_) return;
  if (device_ == c10::DeviceType::CUDA) {
    previous_ = at::autocast::is_enabled();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    previous_ = at::autocast::is_cpu_enabled();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  if (device_ == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(previous_);
  } else {
    at::autocast::set_cpu_enabled(previous_);
  }
  at::autocast::clear_cache();
}

}  // namespace difffit
