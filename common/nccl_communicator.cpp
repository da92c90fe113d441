#include "common/nccl_communicator.h"

#include <ATen/ATen.h>

#include <cstring>
#include <string>

#include "common/error.h"
#include "common/logging.h"

#if DIFFFIT_WITH_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif
#if DIFFFIT_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace difffit {
namespace {

// All ranks agree: throws on every rank, with the first failing rank's reason, if any
// rank's `reason` is not empty (reasons are gathered as fixed-size byte strings).
void agree_or_throw(Communicator& bootstrap, const std::string& reason) {
  constexpr int64_t kWidth = 240;
  at::Tensor mine = at::zeros({kWidth}, at::kByte);
  std::memcpy(mine.data_ptr(), reason.data(), std::min<size_t>(reason.size(), kWidth - 1));
  std::vector<at::Tensor> all = bootstrap.allgather(mine);
  for (size_t r = 0; r < all.size(); ++r) {
    const char* text = static_cast<const char*>(all[r].contiguous().data_ptr());
    if (text[0] != '\0') {
      throw_usage("NCCL: rank " + std::to_string(r) + ": " + std::string(text, strnlen(text, kWidth)));
    }
  }
}

#if DIFFFIT_WITH_NCCL

void check_cuda(cudaError_t code, const char* what) {
  if (code != cudaSuccess) throw_io(std::string("CUDA ") + what + ": " + cudaGetErrorString(code));
}

void check_nccl(ncclResult_t code, const char* what) {
  if (code != ncclSuccess) throw_io(std::string("NCCL ") + what + ": " + ncclGetErrorString(code));
}

ncclDataType_t nccl_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kLong: return ncclInt64;
    case at::kByte: return ncclUint8;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    default: throw_usage(std::string("NCCL: unsupported dtype ") + at::toString(t.scalar_type()));
  }
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(int rank, int size, int device, const ncclUniqueId& id) : rank_(rank), size_(size), device_(device) {
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
    check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");  // blocking: ordered after the default stream
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (staging_) cudaFree(staging_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool takes_device_tensors() const override { return true; }

  void allreduce_sum(at::Tensor& t) override {
    require_contiguous(t);
    const size_t bytes = t.nbytes();
    collective(t, bytes, t, bytes, [&](const void* in, void* out) {
      check_nccl(ncclAllReduce(in, out, t.numel(), nccl_type(t), ncclSum, comm_, stream_), "allreduce");
    });
  }

  std::vector<at::Tensor> allgather(const at::Tensor& tensor) override {
    at::Tensor t = tensor.contiguous();
    std::vector<int64_t> shape = {size_};
    for (int64_t s : t.sizes()) shape.push_back(s);
    at::Tensor all = at::empty(shape, t.options());
    collective(t, t.nbytes(), all, all.nbytes(), [&](const void* in, void* out) {
      check_nccl(ncclAllGather(in, out, t.numel(), nccl_type(t), comm_, stream_), "allgather");
    });
    std::vector<at::Tensor> out;
    for (int r = 0; r < size_; ++r) out.push_back(all[r]);
    return out;
  }

  // Point-to-point in one group: NCCL has no gather collective.
  std::vector<at::Tensor> gather(const at::Tensor& tensor, int root) override {
    at::Tensor t = tensor.contiguous();
    std::vector<int64_t> shape = {rank_ == root ? size_ : 0};
    for (int64_t s : t.sizes()) shape.push_back(s);
    at::Tensor all = at::empty(shape, t.options());
    const size_t bytes = t.nbytes();
    collective(t, bytes, all, all.nbytes(), [&](const void* in, void* out) {
      check_nccl(ncclGroupStart(), "group start");
      if (rank_ == root) {
        for (int r = 0; r < size_; ++r) {
          void* slot = static_cast<char*>(out) + r * bytes;
          if (r == root)
            check_cuda(cudaMemcpyAsync(slot, in, bytes, cudaMemcpyDeviceToDevice, stream_), "copy");
          else
            check_nccl(ncclRecv(slot, t.numel(), nccl_type(t), r, comm_, stream_), "recv");
        }
      } else {
        check_nccl(ncclSend(in, t.numel(), nccl_type(t), root, comm_, stream_), "send");
      }
      check_nccl(ncclGroupEnd(), "group end");
    });
    std::vector<at::Tensor> out;
    for (int64_t r = 0; r < all.size(0); ++r) out.push_back(all[r]);
    return out;
  }

  void broadcast(at::Tensor& t, int root) override {
    require_contiguous(t);
    collective(t, t.nbytes(), t, t.nbytes(), [&](const void* in, void* out) {
      check_nccl(ncclBroadcast(in, out, t.numel(), nccl_type(t), root, comm_, stream_), "broadcast");
    });
  }

  void barrier() override {
    at::Tensor one = at::ones({1}, at::kFloat);
    allreduce_sum(one);
  }

 private:
  static void require_contiguous(const at::Tensor& t) {
    if (!t.is_contiguous()) throw_usage("NCCL collectives need contiguous tensors");
  }

  // Runs `call(device_in, device_out)` on the stream and waits for it. CUDA tensors are used
  // in place (after the device has finished the work that produced them); CPU tensors go
  // through one device buffer: input at its start, output after it.
  template <typename Call>
  void collective(const at::Tensor& in, size_t in_bytes, at::Tensor& out, size_t out_bytes, Call call) {
    if (in.is_cuda() && out.is_cuda()) {
      check_cuda(cudaDeviceSynchronize(), "synchronize");
      call(in.data_ptr(), out.data_ptr());
      check_cuda(cudaStreamSynchronize(stream_), "stream synchronize");
      return;
    }
    if (!in.device().is_cpu() || !out.device().is_cpu()) throw_usage("NCCL collectives take CPU or CUDA tensors");
    const size_t in_offset = 0, out_offset = (in_bytes + 255) / 256 * 256;
    char* buffer = staging(out_offset + out_bytes);
    check_cuda(cudaMemcpyAsync(buffer + in_offset, in.data_ptr(), in_bytes, cudaMemcpyHostToDevice, stream_), "copy in");
    call(buffer + in_offset, buffer + out_offset);
    check_cuda(cudaMemcpyAsync(out.data_ptr(), buffer + out_offset, out_bytes, cudaMemcpyDeviceToHost, stream_), "copy out");
    check_cuda(cudaStreamSynchronize(stream_), "stream synchronize");
  }

  char* staging(size_t bytes) {
    if (bytes > staging_bytes_) {
      if (staging_) check_cuda(cudaFree(staging_), "cudaFree");
      staging_ = nullptr;
      check_cuda(cudaMalloc(&staging_, bytes), "cudaMalloc");
      staging_bytes_ = bytes;
    }
    return static_cast<char*>(staging_);
  }

  int rank_ = 0, size_ = 1, device_ = 0;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  void* staging_ = nullptr;
  size_t staging_bytes_ = 0;
};

#endif  // DIFFFIT_WITH_NCCL

}  // namespace

#if DIFFFIT_WITH_NCCL

bool nccl_compiled() { return true; }

int cuda_device_count() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess ? devices : 0;
}

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int local_rank) {
  int devices = 0;
  const cudaError_t found = cudaGetDeviceCount(&devices);
  std::string reason;
  if (found != cudaSuccess) {
    reason = std::string("no CUDA device visible (") + cudaGetErrorString(found) + ")";
  } else if (devices == 0) {
    reason = "no CUDA device visible";
  }
  agree_or_throw(bootstrap, reason);
  const int device = local_rank % devices;
#if DIFFFIT_WITH_CUDA
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));  // "cuda" in LibTorch means this device now
#endif
  at::Tensor id = at::zeros({static_cast<int64_t>(sizeof(ncclUniqueId))}, at::kByte);
  reason.clear();
  if (bootstrap.rank() == 0) {
    ncclUniqueId unique;
    const ncclResult_t made = ncclGetUniqueId(&unique);
    if (made == ncclSuccess) {
      std::memcpy(id.data_ptr(), &unique, sizeof unique);
    } else {
      reason = std::string("ncclGetUniqueId: ") + ncclGetErrorString(made);
    }
  }
  agree_or_throw(bootstrap, reason);
  bootstrap.broadcast(id, 0);
  ncclUniqueId unique;
  std::memcpy(&unique, id.data_ptr(), sizeof unique);
  std::unique_ptr<Communicator> comm;
  reason.clear();
  try {
    comm = std::make_unique<NcclCommunicator>(bootstrap.rank(), bootstrap.size(), device, unique);
  } catch (const Error& e) {
    reason = e.what();
  }
  agree_or_throw(bootstrap, reason);
  log()->info("[nccl] rank {} of {} on CUDA device {} of {}", bootstrap.rank(), bootstrap.size(), device, devices);
  return comm;
}

#else

bool nccl_compiled() { return false; }
int cuda_device_count() { return 0; }

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int) {
  agree_or_throw(bootstrap, "this build has no NCCL (nccl.h and libnccl were not found when it was configured)");
  return nullptr;
}

#endif

std::unique_ptr<Communicator> make_data_parallel_communicator(bool on_cuda, std::unique_ptr<Communicator> mpi) {
  if (!mpi) mpi = make_mpi_communicator();
  if (!on_cuda) return mpi;
  try {
    return make_nccl_communicator(*mpi, mpi_local_rank());
  } catch (const Error& e) {
    if (mpi->rank() == 0) log()->warn("[nccl] not used, gradients are averaged through MPI: {}", e.what());
    return mpi;
  }
}

}  // namespace difffit
