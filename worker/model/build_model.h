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

// Adds N(0, std^2) to every parameter that requires grad (all but pos_embed before a method
// is applied; the method's tensors after): a stand-in for pre-trained or fine-tuned weights
// where none exist (benchmarks, the demo, tests). The reference init zeroes adaLN and the
// output layer, which makes every output 0 and most gradients vanish.
void perturb_trainable_weights(DiTImpl& model, double std);

}  // namespace difffit
