#include "worker/model/build_model.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "common/logging.h"
#include "worker/model/delta.h"

namespace difffit {

DiT build_model(const DiTConfig& config, const ModelSource& source) {
  // Weights are initialised only when no checkpoint will overwrite them.
  DiT model(config, /*initialize=*/source.checkpoint.empty());
  LoadOptions load = source.load;
  if (!source.delta.empty()) {
    // A delta that re-learned the class table may sit on a base with another class count.
    DeltaInfo info = read_delta_info(source.delta);
    load.reinit_class_table = load.reinit_class_table || info.method.train_class_table ||
                              info.method.kind == MethodKind::Full;
  }
  if (!source.checkpoint.empty()) load_dit_checkpoint(*model, source.checkpoint, load);
  if (!source.delta.empty()) {
    DeltaInfo info = load_delta(source.delta, *model);
    log()->info("[model] applied {} delta {}", info.method.name(), source.delta);
  }
  return model;
}

void perturb_trainable_weights(DiTImpl& model, double std) {
  at::NoGradGuard no_grad;
  for (auto& p : model.parameters())
    if (p.requires_grad()) p.add_(at::randn_like(p) * std);
}

}  // namespace difffit
