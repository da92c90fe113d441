// The few collective operations the pipeline needs, behind one interface: MPI
// across ranks, or a single-process stand-in so every code path runs without MPI.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

namespace difffit {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place, on contiguous CPU float32/float64/int64 tensors of the same shape on every rank.
  virtual void allreduce_sum(at::Tensor& tensor) = 0;
  // Every rank's tensor (same shape and dtype everywhere), in rank order.
  virtual std::vector<at::Tensor> allgather(const at::Tensor& tensor) = 0;
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;
  // A barrier that gives up after `timeout_s` (<= 0: waits for ever); false when it gave
  // up, i.e. some rank did not arrive in time (then nothing but ending the job is safe).
  virtual bool barrier_within(double timeout_s) {
    barrier();
    return true;
  }
  // Whether collectives take tensors where they live (NCCL: CUDA tensors) rather than
  // contiguous CPU tensors only (MPI).
  virtual bool takes_device_tensors() const { return false; }
};

// Rank 0 of 1: collectives are identities.
std::unique_ptr<Communicator> make_local_communicator();

// MPI_COMM_WORLD; MPI must be initialised (see MpiSession).
std::unique_ptr<Communicator> make_mpi_communicator();

// Collective over MPI_COMM_WORLD: the ranks that pass the same color >= 0 get one
// communicator together (ranked by key); a negative color gets nullptr.
std::unique_ptr<Communicator> split_mpi_communicator(int color, int key);

// Whether MPI was started with MPI_THREAD_MULTIPLE (any thread may call at any time).
bool mpi_threads_concurrent();

// This process's rank and the number of ranks in MPI_COMM_WORLD; MPI must be initialised.
struct MpiWorld {
  int rank = 0;
  int size = 1;
};
MpiWorld mpi_world();

// This process's rank among the ranks on its node (MPI_COMM_TYPE_SHARED): picks its GPU.
int mpi_local_rank();

// MPI_Init / MPI_Finalize for the lifetime of main().
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

}  // namespace difffit
