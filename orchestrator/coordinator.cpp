#include "orchestrator/coordinator.h"

#include <chrono>
#include <csignal>
#include <set>
#include <vector>

#include "common/logging.h"
#include "common/stop_signals.h"
#include "orchestrator/messages.h"

namespace difffit {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

enum class SlotState { Starting, Idle, Busy, Lost };

struct WorkerSlot {
  SlotState state = SlotState::Starting;
  long index = -1;                  // the run it works on
  Clock::time_point idle_since;     // for the dispatch gap
  Clock::time_point last_heard;     // heartbeat watch
};

class Coordinator {
 public:
  Coordinator(const SweepConfig& config, SweepLedger& ledger, MessageTransport& transport, std::vector<int> workers)
      : config_(config), ledger_(ledger), transport_(transport), slots_(transport.size()), workers_(std::move(workers)) {}

  int run() {
    if (config_.ranks_per_run > 1) {
      log()->info("[sweep] coordinating {} run group(s) of {} ranks", workers_.size(), config_.ranks_per_run);
    } else {
      log()->info("[sweep] coordinating {} worker rank(s)", workers_.size());
    }
    while (true) {
      notice_stop_signal();
      notice_drain_request();
      if (auto envelope = transport_.poll(Channel::Work, 0.02)) handle(envelope->source, envelope->text);
      while (auto beat = transport_.poll(Channel::Control, 0.0)) handle(beat->source, beat->text);
      if (!stopping_ && !draining_) dispatch();
      watch_heartbeats();
      if (finished()) break;
    }
    for (int rank : workers_) {
      if (slots_[rank].state == SlotState::Idle) send(rank, Channel::Work, Message{MessageKind::Exit});
    }
    const int code = ledger_.finish(stop_signal_, draining_);
    for (int rank : workers_) {
      if (slots_[rank].state == SlotState::Lost) {
        log()->error("[sweep] rank {} stopped answering; ending the job (rerun the sweep to resume)", rank);
        transport_.abort_job(code == 0 ? 1 : code);
      }
    }
    return code;
  }

 private:
  void send(int rank, Channel channel, const Message& message) {
    transport_.send(rank, channel, encode_message(message));
  }

  void notice_stop_signal() {
    if (stopping_ || !stop_signal()) return;
    begin_stopping(stop_signal(), "received signal " + std::to_string(stop_signal()));
  }

  // A DRAIN file: no more runs start; the busy ones finish (checked twice a second).
  void notice_drain_request() {
    const auto now = Clock::now();
    if (draining_ || stopping_ || now < next_drain_check_) return;
    next_drain_check_ = now + std::chrono::milliseconds(500);
    if (!ledger_.drain_requested()) return;
    draining_ = true;
    int busy = 0;
    for (int rank : workers_) busy += slots_[rank].state == SlotState::Busy;
    log()->warn("[sweep] DRAIN found: starting no more runs; the {} in flight finish first", busy);
  }

  // Busy workers are asked to save and stop too (under mpirun or srun they usually
  // got the signal themselves; this covers a signal sent to rank 0 alone).
  void begin_stopping(int signal, const std::string& why) {
    stopping_ = true;
    stop_signal_ = signal;
    log()->warn("[sweep] {}: letting busy workers save their runs, then stopping", why);
    for (int rank : workers_) {
      if (slots_[rank].state != SlotState::Busy) continue;
      Message stop{MessageKind::Stop};
      stop.signal = signal;
      send(rank, Channel::Control, stop);
    }
  }

  void handle(int rank, const std::string& text) {
    const Message message = decode_message(text);
    WorkerSlot& slot = slots_.at(rank);
    const auto now = Clock::now();
    slot.last_heard = now;
    switch (message.kind) {
      case MessageKind::Ready:
        slot.state = SlotState::Idle;
        slot.idle_since = now;
        break;
      case MessageKind::Heartbeat:
        break;
      case MessageKind::Report:
        ledger_.record(message.report, rank);
        slot.state = slot.state == SlotState::Lost ? SlotState::Lost : SlotState::Idle;
        slot.index = -1;
        slot.idle_since = now;
        if (message.report.status == RunStatus::Stopped && !stopping_) {
          begin_stopping(message.report.signal, "rank " + std::to_string(rank) + " was stopped by a signal");
        }
        break;
      default:
        log()->warn("[sweep] unexpected '{}' message from rank {}", message_kind_name(message.kind), rank);
    }
  }

  void dispatch() {
    for (int rank : workers_) {
      WorkerSlot& slot = slots_[rank];
      if (slot.state != SlotState::Idle) continue;
      const long index = ledger_.next_runnable(quarantined_);
      if (index < 0) return;
      Message assign{MessageKind::Assign};
      assign.request = ledger_.start(static_cast<size_t>(index), rank);
      send(rank, Channel::Work, assign);
      const auto now = Clock::now();
      ledger_.timings.dispatch_gap_s += seconds_between(slot.idle_since, now);
      slot.state = SlotState::Busy;
      slot.index = index;
      slot.last_heard = now;
    }
  }

  void watch_heartbeats() {
    if (config_.heartbeat_timeout_s <= 0) return;
    const auto now = Clock::now();
    for (int rank : workers_) {
      WorkerSlot& slot = slots_[rank];
      if (slot.state != SlotState::Busy || seconds_between(slot.last_heard, now) < config_.heartbeat_timeout_s) continue;
      ledger_.record_lost(static_cast<size_t>(slot.index), rank,
                          "no heartbeat from rank " + std::to_string(rank) + " for " +
                              std::to_string(static_cast<int>(config_.heartbeat_timeout_s)) + " s (hung?)");
      slot.state = SlotState::Lost;
      // The silent rank may still be writing into this run's folder: not again in this job.
      quarantined_.insert(static_cast<size_t>(slot.index));
    }
  }

  bool finished() const {
    bool any_idle = false;
    for (int rank : workers_) {
      if (slots_[rank].state == SlotState::Busy || slots_[rank].state == SlotState::Starting) return false;
      any_idle = any_idle || slots_[rank].state == SlotState::Idle;
    }
    if (stopping_ || draining_ || !any_idle) return true;
    // Nothing can start: pending runs wait only on runs that are not running anywhere.
    return ledger_.next_runnable(quarantined_) < 0;
  }

  const SweepConfig& config_;
  SweepLedger& ledger_;
  MessageTransport& transport_;
  std::vector<WorkerSlot> slots_;  // indexed by rank; slot 0 (this rank) unused
  std::vector<int> workers_;       // the ranks runs are handed to
  std::set<size_t> quarantined_;  // runs of ranks that went silent
  bool stopping_ = false;
  int stop_signal_ = 0;
  bool draining_ = false;
  Clock::time_point next_drain_check_;
};

}  // namespace

int coordinate_sweep(const SweepConfig& config, SweepLedger& ledger, MessageTransport& transport,
                     std::vector<int> workers) {
  return Coordinator(config, ledger, transport, std::move(workers)).run();
}

int run_sweep_in_process(const SweepConfig& config, SweepLedger& ledger, const RunExecutor& execute) {
  int signal = 0;
  bool drained = false;
  while (!(signal = stop_signal()) && !(drained = ledger.drain_requested())) {
    const long index = ledger.next_runnable();
    if (index < 0) break;
    const RunRequest request = ledger.start(static_cast<size_t>(index), 0);
    const RunReport report = execute(request, {}, DataParallel{});
    ledger.record(report, 0);
    if (report.status == RunStatus::Stopped) {
      signal = report.signal;
      break;
    }
  }
  if (drained) log()->warn("[sweep] DRAIN found: starting no more runs");
  return ledger.finish(signal, drained);
}

}  // namespace difffit
