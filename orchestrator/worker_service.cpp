#include "orchestrator/worker_service.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <csignal>
#include <mutex>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/communicator.h"
#include "common/logging.h"
#include "common/stop_signals.h"
#include "orchestrator/messages.h"
#include "worker/run/execute_run.h"

namespace difffit {
namespace {

constexpr int kCoordinator = 0;

// Sends a heartbeat every interval and turns a coordinator's stop request into a
// local stop signal (the run then saves its checkpoint at the next step).
class HeartbeatThread {
 public:
  HeartbeatThread(MessageTransport& transport, int64_t index, double interval_s)
      : transport_(transport), index_(index), interval_s_(interval_s), thread_([this] { loop(); }) {}
  ~HeartbeatThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void set_step(int64_t step) { step_ = step; }

 private:
  void loop() {
    auto next = std::chrono::steady_clock::now();
    while (true) {
      if (auto control = transport_.poll(Channel::Control, 0.0)) {
        Message message = decode_message(control->text);
        if (message.kind == MessageKind::Stop) request_stop(message.signal ? message.signal : SIGUSR2);
      }
      if (std::chrono::steady_clock::now() >= next) {
        Message beat{MessageKind::Heartbeat};
        beat.index = index_;
        beat.step = step_;
        transport_.send(kCoordinator, Channel::Control, encode_message(beat));
        next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(interval_s_));
      }
      std::unique_lock<std::mutex> lock(mutex_);
      if (wake_.wait_for(lock, std::chrono::milliseconds(100), [this] { return done_; })) return;
    }
  }

  MessageTransport& transport_;
  int64_t index_;
  double interval_s_;
  std::atomic<int64_t> step_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

// Every rank of a run group came back from the run, or the job ends (see RunGroup). A
// rank whose run ended well waits as long as it takes: every other rank took part in all
// of the run's collectives, so they come (the leader may still be scoring). A rank whose
// run failed waits for the heartbeat timeout: the others either failed alike and come at
// once, or wait in a collective this rank will never join.
void agree_run_ended(const SweepConfig& config, MessageTransport& transport, const RunGroup& group,
                     const RunRequest& request, bool failed) {
  if (!group.check || group.check->barrier_within(failed ? config.heartbeat_timeout_s : 0)) return;
  log()->error("[worker] rank {}: the other ranks of its run group did not come back from run {} within {} s "
               "(one failed alone?); ending the job (rerun the sweep to resume)",
               transport.rank(), request.expected_run_id, config.heartbeat_timeout_s);
  log()->flush();
  transport.abort_job(1);
}

// A done report with made-up metrics (about the size of a real run's), touching no files.
RunReport simulate_run(const RunRequest& request) {
  RunReport report;
  report.index = request.index;
  report.status = RunStatus::Done;
  report.attempt = request.attempt;
  report.run_id = request.expected_run_id;
  report.run_dir = "(simulated)";
  // About the size of a real run's metrics.json, with numbers that differ per run.
  nlohmann::ordered_json metrics;
  metrics["run_id"] = request.expected_run_id;
  metrics["simulated"] = true;
  const double x = static_cast<double>((request.index * 2654435761u) % 1000) / 1000.0;
  for (const char* key : {"final_loss", "fid", "kid", "sfid", "inception_score", "precision", "recall",
                          "train_seconds", "sample_seconds", "steps_per_second"})
    metrics[key] = x + key[0];
  metrics["trainable_params"] = 114848;
  metrics["metric"] = "FID (simulated)";
  report.metrics_json = metrics.dump(2);
  return report;
}

}  // namespace

RunExecutor real_runs() {
  return [](const RunRequest& request, const std::function<void(int64_t)>& on_step, const DataParallel& dp) {
    return execute_run(request, on_step, dp);
  };
}

RunExecutor simulated_runs() {
  return [](const RunRequest& request, const std::function<void(int64_t)>&, const DataParallel&) {
    return simulate_run(request);
  };
}

void serve_as_worker(const SweepConfig& config, MessageTransport& transport, const RunExecutor& execute,
                     const RunGroup& group) {
  log()->info("[worker] rank {} (pid {}) ready{}", transport.rank(), static_cast<long>(::getpid()),
              group.comm ? ", leading a run group of " + std::to_string(group.comm->size()) + " ranks" : "");
  log()->flush();
  const DataParallel dp = data_parallel_over(group.comm);
  transport.send(kCoordinator, Channel::Work, encode_message(Message{MessageKind::Ready}));
  while (true) {
    auto envelope = transport.poll(Channel::Work, 1.0);
    if (!envelope) continue;
    Message message = decode_message(envelope->text);
    if (message.kind != MessageKind::Assign && message.kind != MessageKind::Exit) {
      log()->warn("[worker] unexpected '{}' message", message_kind_name(message.kind));
      continue;
    }
    for (int member : group.members) transport.send(member, Channel::Work, envelope->text);
    if (message.kind == MessageKind::Exit) return;
    log()->info("[worker] run {} (attempt {}): {}", message.request.expected_run_id, message.request.attempt,
                message.request.experiment);
    Message report{MessageKind::Report};
    {
      HeartbeatThread heartbeat(transport, message.request.index, config.heartbeat_interval_s);
      report.report = execute(message.request, [&](int64_t step) { heartbeat.set_step(step); }, dp);
    }
    agree_run_ended(config, transport, group, message.request, report.report.status == RunStatus::Failed);
    transport.send(kCoordinator, Channel::Work, encode_message(report));
  }
}

void serve_as_group_member(const SweepConfig& config, MessageTransport& transport, const RunExecutor& execute,
                           const RunGroup& group) {
  log()->info("[worker] rank {} (pid {}) ready, rank {} of a run group of {}", transport.rank(),
              static_cast<long>(::getpid()), group.comm->rank(), group.comm->size());
  log()->flush();
  const DataParallel dp = data_parallel_over(group.comm);
  const char* fault = std::getenv("DIFFFIT_INJECT_FAULT");
  while (true) {
    auto envelope = transport.poll(Channel::Work, 1.0);  // only the group's leader sends here
    if (!envelope) continue;
    Message message = decode_message(envelope->text);
    if (message.kind == MessageKind::Exit) return;
    if (message.kind != MessageKind::Assign) continue;
    // DIFFFIT_INJECT_FAULT=group-member: this rank fails its run alone, at once (how the
    // tests check that such a group ends its job rather than hangs).
    bool failed = true;
    if (fault && std::string(fault) == "group-member") {
      log()->error("[worker] injected fault: rank {} fails run {} alone (DIFFFIT_INJECT_FAULT)", transport.rank(),
                   message.request.expected_run_id);
    } else {
      // The leader's report is the run's; a failure here is in this rank's log (the ranks
      // of a run usually fail alike, and then they all come back).
      failed = execute(message.request, {}, dp).status == RunStatus::Failed;
    }
    agree_run_ended(config, transport, group, message.request, failed);
  }
}

}  // namespace difffit
