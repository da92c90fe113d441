// The few collective operations the pipeline needs, behind one interface: MPI
// across ranks, or a single-process stand-in so every code path runs without MPI.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
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
  // Every rank's tensor (same shape and dtype everywhere) on `root`, in rank order; the
  // other ranks get an empty vector (and hold nothing but their own).
  virtual std::vector<at::Tensor> gather(const at::Tensor& tensor, int root) = 0;
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

// Rank `rank`'s rows of `n` shared over `ranks`: whole blocks of `batch` rows counted from
// row 0, one contiguous run per rank (the last ranks' runs may be shorter or empty);
// batch <= 0 means one block of ceil(n / ranks) rows per rank. n <= 0 gives nothing.
struct RowShare {
  int64_t first = 0;
  int64_t count = 0;
};
RowShare row_share(int64_t n, int64_t batch, int rank, int ranks);

// Every rank's `mine` (its row_share(n, batch, ...) rows, any dtype the communicator
// takes) on every rank, concatenated in rank order: the n rows in index order, on the CPU.
// Shorter shares are padded for the gather, so every rank sends one shape.
at::Tensor allgather_rows(Communicator& comm, const at::Tensor& mine, int64_t n, int64_t batch);

// The same n rows on `root` alone (what only one rank writes, e.g. a run's decoded images);
// the other ranks get an undefined tensor.
at::Tensor gather_rows(Communicator& comm, const at::Tensor& mine, int64_t n, int64_t batch, int root = 0);

// Rank 0's `value` on every rank (one decision all ranks then follow alike).
bool rank0_decides(Communicator& comm, bool value);

// Runs `work` on rank 0 alone (e.g. building a cache the others then read) while the
// other ranks wait; then all of them fail alike when it failed (rank 0 with its own error,
// the others with one of the same kind naming rank 0), so none is left blocked in a later
// collective. Null or one rank: just runs `work`.
void run_on_rank0(Communicator* comm, const std::function<void()>& work);

// Runs `work` on every rank, then all of them fail alike when it failed on any (a rank that
// failed with its own error, the others with one of the same kind naming the first rank that
// failed). For checks each rank makes of its own view (files on its own node).
void run_on_every_rank(Communicator* comm, const std::function<void()>& work);

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

// Open MPI 5 under srun without PMIx can start N singletons, each thinking it is alone and
// doing the whole job: a usage error when MPI sees 1 rank but SLURM_NTASKS says more.
void refuse_slurm_singletons(int world_size);

// MPI_Init / MPI_Finalize for the lifetime of main().
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

}  // namespace difffit
