#include "worker/train/data_parallel.h"

#include <ATen/ATen.h>

#include "common/communicator.h"

namespace difffit {

DataParallel data_parallel_over(Communicator* comm) {
  DataParallel dp;
  if (comm) {
    dp.comm = comm;
    dp.rank = comm->rank();
    dp.world = comm->size();
  }
  return dp;
}

void average_gradients(const std::vector<at::Tensor>& params, const DataParallel& dp) {
  if (!dp.active()) return;
  if (params.empty()) return;
  // NCCL reduces on the GPU where the gradients are; MPI needs them on the CPU.
  const at::Device where = dp.comm->takes_device_tensors() ? params.front().device() : at::Device(at::kCPU);
  std::vector<at::Tensor> flat;
  flat.reserve(params.size());
  for (const auto& p : params) {
    at::Tensor g = p.grad();
    flat.push_back(g.defined() ? g.detach().to(where, at::kFloat).reshape({-1})
                               : at::zeros({p.numel()}, at::TensorOptions(where).dtype(at::kFloat)));
  }
  at::Tensor buffer = at::cat(flat).contiguous();
  dp.comm->allreduce_sum(buffer);
  buffer.div_(static_cast<double>(dp.world));
  int64_t offset = 0;
  for (const auto& p : params) {
    at::Tensor mean = buffer.narrow(0, offset, p.numel()).view(p.sizes()).to(p.device(), p.scalar_type());
    offset += p.numel();
    if (p.grad().defined()) {
      p.mutable_grad().detach().copy_(mean);
    } else {
      p.mutable_grad() = mean.clone();
    }
  }
}

std::vector<double> sum_over_ranks(const std::vector<double>& values, const DataParallel& dp) {
  if (!dp.active()) return values;
  at::Tensor t = at::tensor(values, at::kDouble).contiguous();
  dp.comm->allreduce_sum(t);
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

int agreed_stop_signal(int local_signal, const DataParallel& dp) {
  if (!dp.active()) return local_signal;
  at::Tensor mine = at::full({1}, static_cast<int64_t>(local_signal), at::kLong);
  for (const auto& s : dp.comm->allgather(mine)) {
    if (s.item<int64_t>() != 0) return static_cast<int>(s.item<int64_t>());
  }
  return 0;
}

}  // namespace difffit
