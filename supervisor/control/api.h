// The control API's decisions, without sockets: ControlApi::Handle maps a request to
// calls on the narrow Commands interface and answers through a Responder. The HTTP server
// (http_server) does the I/O; tests call Handle directly with a fake Commands.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "supervisor/base/clock.h"
#include "supervisor/base/status.h"
#include "supervisor/control/protocol.h"
#include "supervisor/handover/service.h"

namespace baton {

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, e.g. /v1/services/web/logs?lines=50
  std::string body;
  bool wants_stream = false;  // Accept: application/x-ndjson
  std::string authorization;  // the Authorization header, for the dashboard's token
};

// How an answer goes back. Exactly one of Reply, ReplyText, or StartStream ... EndStream.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void Reply(int http_status, const nlohmann::json& body) = 0;
  virtual void ReplyText(int http_status, const std::string& content_type, std::string body) = 0;
  virtual void StartStream() = 0;
  virtual void StreamLine(const nlohmann::json& line) = 0;
  virtual void StreamText(std::string line) = 0;  // a line of JSON text already written
  virtual void EndStream() = 0;
  // Called once if the client goes away before the answer is complete.
  virtual void OnClose(std::function<void()> fn) = 0;
};

// What the API may ask of the daemon.
class Commands {
 public:
  using Progress = std::function<void(const ServiceEvent&)>;
  using Done = std::function<void(const HandoverResult&)>;
  using Line = std::function<void(const nlohmann::json&)>;
  virtual ~Commands() = default;
  // Status as JSON text, written straight out: with a thousand workers a tree would cost
  // milliseconds. The daemon with everything; every service; one service.
  virtual std::string StatusText(bool with_usage) = 0;  // usage: each worker's CPU time and RSS
  virtual std::string ServicesText() = 0;
  virtual Result<std::string> ServiceStatusText(const std::string& service) = 0;
  virtual Result<nlohmann::json> History(const std::string& service) = 0;
  // Each returns an error at once, or OK and later calls `done` once (progress before it).
  virtual Status Upgrade(const std::string& service, const UpgradeRequest& request, Progress progress, Done done) = 0;
  virtual Status Rollback(const std::string& service, const std::optional<std::string>& to, Progress progress,
                          Done done) = 0;
  virtual Status Restart(const std::string& service, Progress progress, Done done) = 0;
  virtual Status Start(const std::string& service, Progress progress, Done done) = 0;
  virtual Status Stop(const std::string& service, Progress progress, std::function<void()> done) = 0;
  virtual Result<nlohmann::json> Scale(const std::string& service, int replicas) = 0;
  // Replaces the live generation's workers one at a time (Service::Recycle); answers at once.
  virtual Result<nlohmann::json> Recycle(const std::string& service) = 0;
  // A progressive handover in progress: skip the remaining steps; hold the current step;
  // carry on.
  virtual Result<nlohmann::json> PromoteRollout(const std::string& service) = 0;
  virtual Result<nlohmann::json> PauseRollout(const std::string& service) = 0;
  virtual Result<nlohmann::json> ResumeRollout(const std::string& service) = 0;
  virtual Result<nlohmann::json> Signal(const std::string& service, const std::string& signal) = 0;
  virtual Result<nlohmann::json> Logs(const std::string& service, size_t lines) = 0;
  // Streams: each returns a subscription id for Unsubscribe.
  virtual Result<uint64_t> FollowLogs(const std::string& service, Line line) = 0;
  virtual uint64_t FollowEvents(Line line) = 0;
  // The status with usage, as text: at once, after events and every `interval`.
  virtual Result<uint64_t> FollowStatus(Duration interval, std::function<void(std::string)> text) = 0;
  virtual void Unsubscribe(uint64_t id) = 0;
  virtual Result<nlohmann::json> Reload() = 0;
  // Replaces batond's program with `binary` (empty: the file it was started from),
  // keeping its pid, workers and sockets. Returns an error at once when busy; otherwise
  // checks the binary and calls `accepted` once: with an error, or with the answer and
  // `proceed`, to be called once that answer is delivered, which replaces the program.
  using SelfUpgradeAccepted = std::function<void(Result<nlohmann::json> answer, std::function<void()> proceed)>;
  virtual Status SelfUpgrade(const std::string& binary, SelfUpgradeAccepted accepted) = 0;
  virtual std::string Metrics() = 0;
  // The web dashboard's address with its token; NotFound without [daemon] web.
  virtual Result<nlohmann::json> Dashboard() = 0;
};

class ControlApi {
 public:
  explicit ControlApi(Commands& commands) : commands_(commands) {}
  void Handle(const ApiRequest& request, std::shared_ptr<Responder> responder);

  static int HttpStatusFor(ErrorCode code);
  static nlohmann::json ErrorBody(const std::string& code, const std::string& message);

 private:
  void HandleService(const std::string& service, protocol::ServiceAction action, const ApiRequest& request,
                     const std::map<std::string, std::string>& query, const nlohmann::json& body,
                     std::shared_ptr<Responder> responder);
  void SelfUpgrade(const nlohmann::json& body, std::shared_ptr<Responder> responder);
  void Logs(const std::string& service, const std::map<std::string, std::string>& query,
            std::shared_ptr<Responder> responder);
  void Stop(const std::string& service, const ApiRequest& request, const nlohmann::json& body,
            std::shared_ptr<Responder> responder);
  void RunLong(const ApiRequest& request, const std::map<std::string, std::string>& query,
               std::shared_ptr<Responder> responder,
               const std::function<Status(Commands::Progress, Commands::Done)>& start);
  void Stream(std::shared_ptr<Responder> responder, const std::function<Result<uint64_t>(Commands::Line)>& subscribe);
  void FollowStatus(const std::map<std::string, std::string>& query, std::shared_ptr<Responder> responder);
  // Starts the stream of subscription `id`, which ends when the client leaves.
  void Streaming(Responder& responder, Result<uint64_t> id);
  Commands& commands_;
};

}  // namespace baton
