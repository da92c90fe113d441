// What the coordinator (rank 0) and the workers say to each other. Plain structs,
// encoded as JSON text for the wire (round-trip tested).
//   worker -> coordinator: ready, heartbeat, report
//   coordinator -> worker: assign, stop (finish the current run early, saving it), exit
#pragma once

#include <cstdint>
#include <string>

#include "worker/run/run_request.h"

namespace difffit {

enum class MessageKind { Ready, Assign, Heartbeat, Report, Stop, Exit };
const char* message_kind_name(MessageKind kind);

struct Message {
  explicit Message(MessageKind message_kind = MessageKind::Ready) : kind(message_kind) {}
  MessageKind kind;
  RunRequest request;  // assign
  RunReport report;    // report
  int64_t index = -1;  // heartbeat: the run being worked on
  int64_t step = 0;    // heartbeat: its latest training step
  int signal = 0;      // stop: the signal to act as if received
};

std::string encode_message(const Message& message);
Message decode_message(const std::string& text);  // throws Error(Internal) on a malformed message

}  // namespace difffit
