// The control API's decisions, without sockets: ControlApi::Handle maps a request to
// calls on the narrow Commands interface and answers through a Responder. The HTTP server
// (http_server) does the I/O; tests call Handle directly with a fake Commands.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "supervisor/base/status.h"
#include "supervisor/handover/service.h"

namespace baton {

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, e.g. /v1/status
  std::string body;
  bool wants_stream = false;  // Accept: application/x-ndjson
};

// How an answer goes back. Exactly one of Reply, or StartStream ... EndStream, is used.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void Reply(int http_status, const nlohmann::json& body) = 0;
  virtual void StartStream() = 0;
  virtual void StreamLine(const nlohmann::json& line) = 0;
  virtual void EndStream() = 0;
};

struct UpgradeRequest {
  std::string version;
  std::optional<std::vector<std::string>> command;
  std::map<std::string, std::string> env;
};

// What the API may ask of the daemon.
class Commands {
 public:
  using Progress = std::function<void(const ServiceEvent&)>;
  using Done = std::function<void(const HandoverResult&)>;
  virtual ~Commands() = default;
  virtual nlohmann::json DaemonStatus() = 0;
  virtual Result<nlohmann::json> ServiceStatus(const std::string& service) = 0;
  virtual Result<nlohmann::json> History(const std::string& service) = 0;
  // Returns an error at once, or OK and later calls `done` once (progress before it).
  virtual Status Upgrade(const std::string& service, const UpgradeRequest& request, Progress progress, Done done) = 0;
  virtual Status Rollback(const std::string& service, const std::optional<std::string>& to, Progress progress,
                          Done done) = 0;
};

class ControlApi {
 public:
  explicit ControlApi(Commands& commands) : commands_(commands) {}
  void Handle(const ApiRequest& request, std::shared_ptr<Responder> responder);

  static int HttpStatusFor(ErrorCode code);
  static nlohmann::json ErrorBody(const std::string& code, const std::string& message);

 private:
  void RunHandover(const std::string& service, const ApiRequest& request, std::shared_ptr<Responder> responder,
                   bool rollback);
  Commands& commands_;
};

}  // namespace baton
