// Activation checkpointing per DiT block (the fast-DiT technique, torch.utils.checkpoint's
// reentrant form): the forward keeps only the block's inputs; the backward runs the block
// again with gradients on and back-propagates through that copy. Trades one more block
// forward per step for the block's activations.
#pragma once

#include <torch/types.h>

namespace difffit {

class DiTBlockImpl;

// block(x, c), without its activations kept for the backward. Gradients are those of
// block(x, c) (the block is deterministic, and its forward is repeated under the same
// autocast state). When neither x nor c needs a gradient, the plain call (nothing would
// ever run the recomputation).
torch::Tensor checkpointed_block(DiTBlockImpl& block, const torch::Tensor& x, const torch::Tensor& c);

}  // namespace difffit
