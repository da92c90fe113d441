// Turns on bf16 autocast for a scope (CPU or CUDA), and restores the previous state.
#pragma once

#include <c10/core/Device.h>

namespace difffit {

// Whether bf16 autocast is on for `device` in this thread.
bool autocast_enabled(c10::DeviceType device);

class AutocastGuard {
 public:
  AutocastGuard(bool enabled, c10::DeviceType device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_;
  c10::DeviceType device_;
  bool previous_ = false;
};

}  // namespace difffit
