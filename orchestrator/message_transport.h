// Point-to-point text messages between ranks. Two channels: `Work` (ready, assign,
// report, exit) and `Control` (heartbeats to the coordinator, stop requests to a busy
// worker), so a worker's heartbeat thread never takes the main loop's messages.
// Receiving polls (MPI_Iprobe + short sleeps): a blocking MPI_Recv spins a core,
// which a 2-core machine cannot spare for an idle coordinator.
#pragma once

#include <memory>
#include <optional>
#include <string>

namespace difffit {

enum class Channel { Work = 1, Control = 2 };

struct Envelope {
  int source = -1;
  std::string text;
};

class MessageTransport {
 public:
  virtual ~MessageTransport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void send(int dest, Channel channel, const std::string& text) = 0;
  // The next message on `channel` from any rank, waiting up to `timeout_s`.
  virtual std::optional<Envelope> poll(Channel channel, double timeout_s) = 0;
  // Ends the whole job at once (a hung rank cannot take part in MPI_Finalize).
  [[noreturn]] virtual void abort_job(int code) = 0;
};

// Over MPI_COMM_WORLD; thread-safe (calls are serialised by a mutex), so MPI must be
// initialised with at least MPI_THREAD_SERIALIZED (MpiSession does).
std::unique_ptr<MessageTransport> make_mpi_transport();

}  // namespace difffit
