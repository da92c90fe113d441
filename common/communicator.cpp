#include "common/communicator.h"

#include <ATen/ATen.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <thread>

#include "common/error.h"

namespace difffit {
namespace {

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(at::Tensor&) override {}
  std::vector<at::Tensor> allgather(const at::Tensor& tensor) override { return {tensor.clone()}; }
  std::vector<at::Tensor> gather(const at::Tensor& tensor, int) override { return {tensor.clone()}; }
  void broadcast(at::Tensor&, int) override {}
  void barrier() override {}
};

MPI_Datatype mpi_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kLong: return MPI_INT64_T;
    case at::kByte: return MPI_UINT8_T;
    default: throw_usage(std::string("MPI: unsupported dtype ") + at::toString(t.scalar_type()));
  }
}

void check(int code, const char* what) {
  if (code != MPI_SUCCESS) throw Error(ErrorKind::IO, std::string("MPI ") + what + " failed");
}

void require_cpu_contiguous(const at::Tensor& t) {
  if (!t.device().is_cpu() || !t.is_contiguous()) throw_usage("MPI collectives need contiguous CPU tensors");
}

// A tensor as an MPI (count, datatype): MPI counts are int, so a tensor of 2^31 elements or
// more (a rank's decoded 512 px images) goes as rows of its leading dimension.
class MpiMessage {
 public:
  explicit MpiMessage(const at::Tensor& t) : type_(mpi_type(t)) {
    constexpr int64_t kMaxCount = std::numeric_limits<int>::max();
    if (t.numel() <= kMaxCount) {
      count_ = static_cast<int>(t.numel());
      return;
    }
    const int64_t row = t.numel() / t.size(0);
    if (t.size(0) > kMaxCount || row > kMaxCount)
      throw_usage("MPI: a tensor of " + std::to_string(t.numel()) + " elements is too large for one message");
    check_type(MPI_Type_contiguous(static_cast<int>(row), type_, &row_type_));
    check_type(MPI_Type_commit(&row_type_));
    type_ = row_type_;
    count_ = static_cast<int>(t.size(0));
  }
  ~MpiMessage() {
    if (row_type_ != MPI_DATATYPE_NULL) MPI_Type_free(&row_type_);
  }
  MpiMessage(const MpiMessage&) = delete;
  MpiMessage& operator=(const MpiMessage&) = delete;
  int count() const { return count_; }
  MPI_Datatype type() const { return type_; }

 private:
  static void check_type(int code) {
    if (code != MPI_SUCCESS) throw Error(ErrorKind::IO, "MPI: cannot make a row datatype");
  }
  MPI_Datatype type_;
  MPI_Datatype row_type_ = MPI_DATATYPE_NULL;
  int count_ = 0;
};

class MpiCommunicator : public Communicator {
 public:
  // Over `comm`; a communicator made by a split is freed with this object.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    mpi_world();  // checks MPI is initialised
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (comm_ != MPI_COMM_WORLD && !finalised) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(at::Tensor& t) override {
    require_cpu_contiguous(t);
    // Reductions take predefined types only, so no row datatype here (gradients are far smaller).
    if (t.numel() > std::numeric_limits<int>::max())
      throw_usage("MPI allreduce: " + std::to_string(t.numel()) + " elements are too many for one message");
    check(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), MPI_SUM,
                        comm_),
          "allreduce");
  }

  std::vector<at::Tensor> allgather(const at::Tensor& tensor) override {
    at::Tensor t = tensor.contiguous();
    require_cpu_contiguous(t);
    std::vector<int64_t> shape = {size_};
    for (int64_t s : t.sizes()) shape.push_back(s);
    at::Tensor all = at::empty(shape, t.options());
    const MpiMessage m(t);
    check(MPI_Allgather(t.data_ptr(), m.count(), m.type(), all.data_ptr(), m.count(), m.type(), comm_), "allgather");
    std::vector<at::Tensor> out;
    for (int r = 0; r < size_; ++r) out.push_back(all[r]);
    return out;
  }

  std::vector<at::Tensor> gather(const at::Tensor& tensor, int root) override {
    at::Tensor t = tensor.contiguous();
    require_cpu_contiguous(t);
    std::vector<int64_t> shape = {rank_ == root ? size_ : 0};
    for (int64_t s : t.sizes()) shape.push_back(s);
    at::Tensor all = at::empty(shape, t.options());
    const MpiMessage m(t);
    check(MPI_Gather(t.data_ptr(), m.count(), m.type(), all.data_ptr(), m.count(), m.type(), root, comm_), "gather");
    std::vector<at::Tensor> out;
    for (int64_t r = 0; r < all.size(0); ++r) out.push_back(all[r]);
    return out;
  }

  void broadcast(at::Tensor& t, int root) override {
    require_cpu_contiguous(t);
    const MpiMessage m(t);
    check(MPI_Bcast(t.data_ptr(), m.count(), m.type(), root, comm_), "broadcast");
  }

  void barrier() override { check(MPI_Barrier(comm_), "barrier"); }

  // Polled with short sleeps, so a rank waiting here does not spin a core.
  bool barrier_within(double timeout_s) override {
    if (timeout_s <= 0) {
      barrier();
      return true;
    }
    MPI_Request request;
    check(MPI_Ibarrier(comm_, &request), "ibarrier");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (true) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "ibarrier test");
      if (done) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;  // the request stays pending: end the job
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

void refuse_slurm_singletons(int world_size) {
  const char* tasks = std::getenv("SLURM_NTASKS");
  if (!tasks || world_size != 1 || std::atoi(tasks) <= 1) return;
  throw_usage("MPI sees 1 rank but SLURM_NTASKS=" + std::string(tasks) +
              ": launch with `srun --mpi=pmix` (or mpirun) so the ranks form one job");
}

MpiWorld mpi_world() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) throw_usage("MPI is not initialised");
  MpiWorld world;
  MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world.size);
  return world;
}

int mpi_local_rank() {
  mpi_world();  // checks MPI is initialised
  MPI_Comm node;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "comm_split_type");
  int rank = 0;
  MPI_Comm_rank(node, &rank);
  MPI_Comm_free(&node);
  return rank;
}

RowShare row_share(int64_t n, int64_t batch, int rank, int ranks) {
  if (n <= 0 || ranks < 1) return {};
  if (batch <= 0) batch = (n + ranks - 1) / ranks;
  const int64_t batches = (n + batch - 1) / batch;
  const int64_t block = (batches + ranks - 1) / ranks * batch;
  RowShare share;
  share.first = std::min(n, rank * block);
  share.count = std::min(n, share.first + block) - share.first;
  return share;
}

namespace {

// `mine` padded to the longest share (rank 0's), so every rank sends one shape.
at::Tensor padded_share(const Communicator& comm, const at::Tensor& mine, int64_t n, int64_t batch, const char* what) {
  const int64_t longest = row_share(n, batch, 0, comm.size()).count;
  const int64_t count = row_share(n, batch, comm.rank(), comm.size()).count;
  if (mine.size(0) != count)
    throw_usage(std::string(what) + ": rank " + std::to_string(comm.rank()) + " holds " + std::to_string(mine.size(0)) +
                " rows, its share is " + std::to_string(count));
  std::vector<int64_t> shape = mine.sizes().vec();
  shape[0] = longest;
  at::Tensor padded = at::zeros(shape, mine.options());
  if (count > 0) padded.narrow(0, 0, count).copy_(mine);
  return padded;
}

at::Tensor first_rows(const std::vector<at::Tensor>& shares, int64_t n) {
  return at::cat(shares).narrow(0, 0, std::max<int64_t>(n, 0)).cpu().contiguous();
}

}  // namespace

at::Tensor allgather_rows(Communicator& comm, const at::Tensor& mine, int64_t n, int64_t batch) {
  return first_rows(comm.allgather(padded_share(comm, mine, n, batch, "allgather_rows")), n);
}

at::Tensor gather_rows(Communicator& comm, const at::Tensor& mine, int64_t n, int64_t batch, int root) {
  const std::vector<at::Tensor> shares = comm.gather(padded_share(comm, mine, n, batch, "gather_rows"), root);
  return comm.rank() == root ? first_rows(shares, n) : at::Tensor();
}

bool rank0_decides(Communicator& comm, bool value) {
  at::Tensor flag = at::full({1}, value ? 1 : 0, at::kLong);
  comm.broadcast(flag, 0);
  return flag.item<int64_t>() != 0;
}

namespace {

// Runs `work`, keeping what it threw in `failure`; the outcome as one number for the other
// ranks: -1 when it succeeded, else the error's kind (Internal for anything not an Error).
at::Tensor attempt(const std::function<void()>& work, std::exception_ptr& failure) {
  ErrorKind kind = ErrorKind::Internal;
  try {
    work();
  } catch (const Error& e) {
    failure = std::current_exception();
    kind = e.kind();
  } catch (...) {
    failure = std::current_exception();
  }
  return at::full({1}, failure ? static_cast<int64_t>(kind) : -1, at::kLong);
}

}  // namespace

void run_on_rank0(Communicator* comm, const std::function<void()>& work) {
  if (!comm || comm->size() == 1) return work();
  std::exception_ptr failure;
  at::Tensor outcome = comm->rank() == 0 ? attempt(work, failure) : at::full({1}, int64_t{-1}, at::kLong);
  comm->broadcast(outcome, 0);
  if (failure) std::rethrow_exception(failure);
  const int64_t failed = outcome.item<int64_t>();
  if (failed >= 0) throw Error(static_cast<ErrorKind>(failed), "rank 0 failed (its log says why)");
}

void run_on_every_rank(Communicator* comm, const std::function<void()>& work) {
  if (!comm || comm->size() == 1) return work();
  std::exception_ptr failure;
  const std::vector<at::Tensor> outcomes = comm->allgather(attempt(work, failure));
  if (failure) std::rethrow_exception(failure);
  for (size_t r = 0; r < outcomes.size(); ++r) {
    const int64_t failed = outcomes[r].cpu().item<int64_t>();
    if (failed >= 0)
      throw Error(static_cast<ErrorKind>(failed), "rank " + std::to_string(r) + " failed (its log says why)");
  }
}

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }
std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

std::unique_ptr<Communicator> split_mpi_communicator(int color, int key) {
  mpi_world();
  MPI_Comm part = MPI_COMM_NULL;
  check(MPI_Comm_split(MPI_COMM_WORLD, color < 0 ? MPI_UNDEFINED : color, key, &part), "comm_split");
  if (part == MPI_COMM_NULL) return nullptr;
  return std::make_unique<MpiCommunicator>(part);
}

bool mpi_threads_concurrent() {
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  return level >= MPI_THREAD_MULTIPLE;
}

// At least serialised threads: a sweep worker's heartbeat thread sends while its main
// thread trains. Concurrent ones when the library has them: a run group's main thread
// runs collectives while the heartbeat thread talks to the coordinator.
MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  if (provided < MPI_THREAD_SERIALIZED) throw_usage("this MPI library does not support MPI_THREAD_SERIALIZED");
}
MpiSession::~MpiSession() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (!finalised) MPI_Finalize();
}

}  // namespace difffit
