// One place that turns (architecture, checkpoint, delta) into a ready DiT.
#pragma once

#include <string>

#include "worker/model/checkpoint_loader.h"
#include "worker/model/dit.h"

namespace difffit {

struct ModelSource {
  std::string checkpoint;  // base weights (.pt or safetensors); empty = fresh reference init
  std::string delta;       // optional fine-tuned delta applied on top
  LoadOptions load;
};

DiT build_model(const DiTConfig& config, const ModelSource& source);

}  // namespace difffit
