// NCCL collectives for data-parallel runs on CUDA: one communicator over the ranks of a
// run, one device per local rank (local rank mod visible devices), the NCCL unique id
// broadcast over the MPI communicator the run already has. CPU tensors are staged through
// a device buffer, so it also works next to a CPU-only LibTorch.
#pragma once

#include <memory>

#include "common/communicator.h"

namespace difffit {

// Whether this build has NCCL (nccl.h and libnccl were found at configure time).
bool nccl_compiled();

// CUDA devices this process can see (0 without NCCL support or without a driver).
int cuda_device_count();

// Collective over `bootstrap`'s ranks (used only while setting up). Every rank must call
// it; all of them succeed or all throw an Error naming why (no CUDA device visible on some
// rank, built without NCCL, NCCL's own error), so every rank can fall back alike.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int local_rank);

// The data-parallel communicator over `mpi`'s ranks (all of MPI_COMM_WORLD when null; a
// sweep's run group otherwise): NCCL when the run is on CUDA and NCCL works, else `mpi`
// itself (logging once why NCCL is not used).
std::unique_ptr<Communicator> make_data_parallel_communicator(bool on_cuda, std::unique_ptr<Communicator> mpi = nullptr);

}  // namespace difffit
