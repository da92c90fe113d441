#include "orchestrator/messages.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json_text.h"

namespace difffit {
namespace {

using Json = nlohmann::json;

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::Done: return "done";
    case RunStatus::Failed: return "failed";
    case RunStatus::Stopped: return "stopped";
  }
  return "failed";
}

RunStatus status_from(const std::string& name) {
  if (name == "done") return RunStatus::Done;
  if (name == "stopped") return RunStatus::Stopped;
  if (name == "failed") return RunStatus::Failed;
  throw Error(ErrorKind::Internal, "message: unknown run status '" + name + "'");
}

MessageKind kind_from(const std::string& name) {
  for (auto kind : {MessageKind::Ready, MessageKind::Assign, MessageKind::Heartbeat, MessageKind::Report,
                    MessageKind::Stop, MessageKind::Exit}) {
    if (name == message_kind_name(kind)) return kind;
  }
  throw Error(ErrorKind::Internal, "message: unknown kind '" + name + "'");
}

}  // namespace

const char* message_kind_name(MessageKind kind) {
  switch (kind) {
    case MessageKind::Ready: return "ready";
    case MessageKind::Assign: return "assign";
    case MessageKind::Heartbeat: return "heartbeat";
    case MessageKind::Report: return "report";
    case MessageKind::Stop: return "stop";
    case MessageKind::Exit: return "exit";
  }
  return "?";
}

std::string encode_message(const Message& m) {
  Json j;
  j["kind"] = message_kind_name(m.kind);
  switch (m.kind) {
    case MessageKind::Assign: {
      const RunRequest& r = m.request;
      j["request"] = {{"index", r.index},           {"experiment", r.experiment}, {"inherited", r.inherited},
                      {"overrides", r.overrides},   {"expected_run_id", r.expected_run_id},
                      {"attempt", r.attempt},       {"time_limit_s", r.time_limit_s}};
      break;
    }
    case MessageKind::Report: {
      const RunReport& r = m.report;
      j["report"] = {{"index", r.index},       {"status", status_name(r.status)}, {"attempt", r.attempt},
                     {"run_id", r.run_id},     {"run_dir", r.run_dir},          {"metrics_json", r.metrics_json},
                     {"error", r.error},       {"signal", r.signal},            {"seconds", r.seconds}};
      break;
    }
    case MessageKind::Heartbeat:
      j["index"] = m.index;
      j["step"] = m.step;
      break;
    case MessageKind::Stop:
      j["signal"] = m.signal;
      break;
    case MessageKind::Ready:
    case MessageKind::Exit:
      break;
  }
  return json_text(j);
}

Message decode_message(const std::string& text) {
  try {
    Json j = Json::parse(text);
    Message m;
    m.kind = kind_from(j.at("kind").get<std::string>());
    if (m.kind == MessageKind::Assign) {
      const Json& r = j.at("request");
      m.request.index = r.at("index").get<int64_t>();
      m.request.experiment = r.at("experiment").get<std::string>();
      m.request.inherited = r.at("inherited").get<std::vector<std::string>>();
      m.request.overrides = r.at("overrides").get<std::vector<std::string>>();
      m.request.expected_run_id = r.at("expected_run_id").get<std::string>();
      m.request.attempt = r.at("attempt").get<int>();
      m.request.time_limit_s = r.at("time_limit_s").get<double>();
    } else if (m.kind == MessageKind::Report) {
      const Json& r = j.at("report");
      m.report.index = r.at("index").get<int64_t>();
      m.report.status = status_from(r.at("status").get<std::string>());
      m.report.attempt = r.at("attempt").get<int>();
      m.report.run_id = r.at("run_id").get<std::string>();
      m.report.run_dir = r.at("run_dir").get<std::string>();
      m.report.metrics_json = r.at("metrics_json").get<std::string>();
      m.report.error = r.at("error").get<std::string>();
      m.report.signal = r.at("signal").get<int>();
      m.report.seconds = r.at("seconds").get<double>();
    } else if (m.kind == MessageKind::Heartbeat) {
      m.index = j.at("index").get<int64_t>();
      m.step = j.at("step").get<int64_t>();
    } else if (m.kind == MessageKind::Stop) {
      m.signal = j.at("signal").get<int>();
    }
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Internal, std::string("malformed sweep message: ") + e.what());
  }
}

}  // namespace difffit
