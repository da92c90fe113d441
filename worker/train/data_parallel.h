// Data-parallel training across ranks: each rank takes a strided share of every global
// batch (the loader's sharding), the gradients are averaged over ranks after backward,
// and decisions that must agree (stop now, the step's loss) are taken together.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace difffit {

class Communicator;

struct DataParallel {
  Communicator* comm = nullptr;  // nullptr: one process
  int rank = 0;
  int world = 1;
  bool active() const { return world > 1; }
};

DataParallel data_parallel_over(Communicator* comm);

// Replaces every gradient by its mean over the ranks (one flat float32 buffer, so a
// PEFT run sends a few hundred kilobytes per step). Undefined gradients count as zeros.
void average_gradients(const std::vector<at::Tensor>& params, const DataParallel& dp);

// Sums small per-rank values (e.g. loss terms) over the ranks; unchanged in one process.
std::vector<double> sum_over_ranks(const std::vector<double>& values, const DataParallel& dp);

// The stop signal seen by any rank (the lowest rank's first), so every rank stops at the
// same step; 0 when none.
int agreed_stop_signal(int local_signal, const DataParallel& dp);

}  // namespace difffit
