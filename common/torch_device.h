// LibTorch devices from the project's settings: an experiment's DeviceKind, or a --device
// flag that may also name one GPU ("cuda:1"). Parsed once where it comes in.
#pragma once

#include <c10/core/Device.h>

#include <string>

#include "common/platform.h"

namespace difffit {

c10::Device torch_device(DeviceKind kind);  // cuda: the current CUDA device
// "cpu", "cuda" or "cuda:K"; a usage error naming `where` otherwise.
c10::Device parse_torch_device(const std::string& name, const std::string& where);

}  // namespace difffit
