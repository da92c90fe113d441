#include "orchestrator/message_transport.h"

#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "common/communicator.h"
#include "common/error.h"

namespace difffit {
namespace {

class MpiTransport : public MessageTransport {
 public:
  MpiTransport() {
    const MpiWorld world = mpi_world();
    rank_ = world.rank;
    size_ = world.size;
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void send(int dest, Channel channel, const std::string& text) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (MPI_Send(text.data(), static_cast<int>(text.size()), MPI_CHAR, dest, static_cast<int>(channel),
                 MPI_COMM_WORLD) != MPI_SUCCESS) {
      throw Error(ErrorKind::IO, "MPI_Send to rank " + std::to_string(dest) + " failed");
    }
  }

  std::optional<Envelope> poll(Channel channel, double timeout_s) override {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    auto pause = std::chrono::microseconds(200);
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        int flag = 0;
        MPI_Status status;
        MPI_Iprobe(MPI_ANY_SOURCE, static_cast<int>(channel), MPI_COMM_WORLD, &flag, &status);
        if (flag) {
          int count = 0;
          MPI_Get_count(&status, MPI_CHAR, &count);
          Envelope envelope;
          envelope.source = status.MPI_SOURCE;
          envelope.text.resize(static_cast<size_t>(count));
          MPI_Recv(envelope.text.data(), count, MPI_CHAR, status.MPI_SOURCE, static_cast<int>(channel),
                   MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          return envelope;
        }
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(20000));  // quick replies, idle ranks stay idle
    }
  }

  [[noreturn]] void abort_job(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  int rank_ = 0, size_ = 1;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<MessageTransport> make_mpi_transport() { return std::make_unique<MpiTransport>(); }

}  // namespace difffit
