#include "common/torch_device.h"

#include <c10/util/Exception.h>

#include "common/error.h"

namespace difffit {

c10::Device torch_device(DeviceKind kind) { return kind == DeviceKind::Cuda ? c10::kCUDA : c10::kCPU; }

c10::Device parse_torch_device(const std::string& name, const std::string& where) {
  const std::string expected = "' (expected cpu, cuda or cuda:K)";
  try {
    const c10::Device device(name);
    if (device.is_cpu() && !device.has_index()) return device;
    if (device.is_cuda()) return device;
  } catch (const c10::Error&) {
  }
  throw_usage(where + ": unknown device '" + name + expected);
}

}  // namespace difffit
