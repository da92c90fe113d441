#pragma once

#include <torch/types.h>

namespace difffit {

// Multi-head self-attention straight from the fused qkv projection, as timm's Attention:
// qkv (B, N, 3C) holds q, k, v with H heads of C / H channels; returns
// softmax(q k^T / sqrt(C / H)) v with the heads side by side again, (B, N, C).
//
// On the CPU in float32 it runs difffit's kernel: one small GEMM per (sample, head) through
// BLAS, reading q, k, v in place and writing the output (and in the backward the gradient of
// qkv) in the layouts the projections use, so no permute or copy is made. It keeps the
// attention probabilities for the backward (B H N^2 floats), so training takes it while they
// fit in 64 MiB per block (DiT-S/2 at 256 px, batch 8: 12.6 MB). bf16 inputs on a CPU
// without AMX are attended in float32 by the same kernel.
// Elsewhere (CUDA, bf16 with AMX, longer sequences) ATen's scaled_dot_product_attention on
// LibTorch 2.x, and the explicit maths on 1.x.
torch::Tensor self_attention(const torch::Tensor& qkv, int64_t heads);

}  // namespace difffit
