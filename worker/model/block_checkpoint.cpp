#include "worker/model/block_checkpoint.h"

#include <torch/autograd.h>

#include "worker/model/dit_layers.h"
#include "worker/model/autocast_guard.h"

namespace difffit {
namespace {

struct CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& c, DiTBlockImpl* block) {
    // The module lives as long as the model the step belongs to; an IValue holds no pointer.
    ctx->saved_data["block"] = reinterpret_cast<int64_t>(block);
    ctx->saved_data["x_grad"] = x.requires_grad();
    ctx->saved_data["c_grad"] = c.requires_grad();
    ctx->saved_data["autocast"] = autocast_enabled(x.device().type());
    ctx->save_for_backward({x, c});
    torch::NoGradGuard no_grad;
    return block->forward(x, c);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* block = reinterpret_cast<DiTBlockImpl*>(ctx->saved_data["block"].toInt());
    const auto saved = ctx->get_saved_variables();
    torch::Tensor x = saved[0].detach().requires_grad_(ctx->saved_data["x_grad"].toBool());
    torch::Tensor c = saved[1].detach().requires_grad_(ctx->saved_data["c_grad"].toBool());
    torch::Tensor out;
    {
      torch::AutoGradMode grad_on(true);
      AutocastGuard autocast(ctx->saved_data["autocast"].toBool(), x.device().type());
      out = block->forward(x, c);
    }
    // Accumulates into the block's parameters (leaves) and into x and c.
    torch::autograd::backward({out}, {grads[0]});
    return {x.requires_grad() ? x.grad() : torch::Tensor(), c.requires_grad() ? c.grad() : torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed_block(DiTBlockImpl& block, const torch::Tensor& x, const torch::Tensor& c) {
  if (!x.requires_grad() && !c.requires_grad()) return block.forward(x, c);
  return CheckpointedBlock::apply(x, c, &block);
}

}  // namespace difffit
