#pragma once

#include <torch/types.h>

namespace difffit {

// The two elementwise steps around each branch of a DiT block, each as one pass over the
// tokens forward and one backward (ATen makes three to five, each with a temporary).
// The forward performs the reference's float operations in its order, so its results are
// bit-identical; the backward gives the same input gradients and sums the broadcast
// gradients in another order. CPU float32 runs difffit's kernels, anything else (CUDA, bf16
// autocast, other shapes) the plain ATen expressions.

// adaLN: LayerNorm(x) (no affine, eps 1e-6) * (1 + scale) + shift; x (B, N, C), shift and
// scale (B, C). The backward recomputes the normalised x instead of keeping it.
torch::Tensor norm_modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale);

// The gated residual: x + gate * branch, times DiffFit's gamma (C) when defined:
// x + (gate * branch) * gamma; x and branch (B, N, C), gate (B, C).
torch::Tensor gated_residual(const torch::Tensor& x, const torch::Tensor& gate, const torch::Tensor& branch,
                             const torch::Tensor& gamma);

}  // namespace difffit
