// The control protocol, the one definition linked by batond and batonctl: HTTP/1.1 with
// JSON bodies on a Unix socket, versioned under /v1.
//
//   GET  /v1/status                       daemon and every service
//   GET  /v1/services                     every service
//   GET  /v1/services/NAME                one service
//   GET  /v1/services/NAME/history        its releases and their outcomes
//   GET  /v1/services/NAME/logs           ?lines=N&follow=1
//   POST /v1/services/NAME/upgrade        UpgradeRequest
//   POST /v1/services/NAME/rollback       {"to": "v1"?}
//   POST /v1/services/NAME/ACTION         restart, start, stop, scale, signal, promote, pause, resume
//   GET  /v1/events                       every ServiceEvent, as it happens
//   POST /v1/reload, /v1/self-upgrade;  GET /metrics (Prometheus text)
//
// Upgrade and rollback wait for the outcome. With "Accept: application/x-ndjson" the
// response streams one JSON object per line: {"event": {...}} for each progress event,
// then {"result": {...}} last. Otherwise the response is the result alone: 200 when
// promoted, 422 with the error and the result when the new generation failed.
//
// Errors: {"error": {"code": "...", "message": "..."}} with a fitting status.
//
// Versioning rule: fields may be added within v1; removing or changing the meaning of a
// field or route needs /v2, served beside /v1 for at least one release.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/base/status.h"

namespace baton {

namespace protocol {

inline constexpr const char* kApiVersion = "v1";
inline constexpr const char* kNdjson = "application/x-ndjson";
inline constexpr const char* kPrometheusText = "text/plain; version=0.0.4";
inline constexpr size_t kMaxBodyBytes = 1 << 20;
inline constexpr const char* kDefaultSocket = "/run/baton/control.sock";
inline constexpr const char* kSocketEnv = "BATON_SOCKET";  // batonctl's default socket, when set

inline constexpr const char* kStatusPath = "/v1/status";
inline constexpr const char* kServicesPath = "/v1/services";
inline constexpr const char* kEventsPath = "/v1/events";
inline constexpr const char* kReloadPath = "/v1/reload";
inline constexpr const char* kDashboardPath = "/v1/dashboard";
inline constexpr const char* kSelfUpgradePath = "/v1/self-upgrade";
inline constexpr const char* kMetricsPath = "/metrics";

// What may follow /v1/services/NAME/.
enum class ServiceAction {
  kHistory,
  kLogs,
  kUpgrade,
  kRollback,
  kRestart,
  kStart,
  kStop,
  kScale,
  kSignal,
  kPromote,
  kPause,
  kResume,
  kRecycle
};
const char* ActionName(ServiceAction action);
std::optional<ServiceAction> ParseAction(std::string_view name);
const char* MethodOf(ServiceAction action);  // "GET" for history and logs, else "POST"

std::string ServicePath(std::string_view service);
// /v1/services/NAME (no action) or /v1/services/NAME/ACTION; nothing for another path or
// an unknown action.
struct ServiceRoute {
  std::string service;
  std::optional<ServiceAction> action;
};
std::optional<ServiceRoute> ParseServicePath(std::string_view path);
std::string ActionPath(std::string_view service, ServiceAction action);

// A target's path and its query parameters ("a=1&b" gives a="1", b=""), split once.
struct Target {
  std::string path;
  std::map<std::string, std::string> query;
};
Target ParseTarget(std::string_view target);

}  // namespace protocol

// What happened, as /v1/events and the handover streams name it.
enum class EventType {
  kSpawned,
  kReady,
  kNotReady,
  kHandoverStarted,
  kStep,
  kStepPassed,
  kPaused,
  kResumed,
  kBatchReady,
  kPromote,
  kPromoted,
  kBaked,
  kRollingBack,
  kDraining,
  kProxyDrain,
  kDrained,
  kDrainTimeout,
  kExited,
  kGenerationExited,
  kCrashed,
  kKill,
  kRestarting,
  kRestartFailed,
  kFailed,
  kFatal,
  kFdStore,
  kScaled,
  kStopping,
  kStopped,
  kHistoryError,
  kSelfUpgraded,
  kSelfUpgradeFailed,
  kTunnelUp,
  kTunnelDown,
  kTunnelError,
  kHookFailed,
  kUnhealthy,
  kReplacing,
  kReplaced,
  kReplaceFailed,
};
inline constexpr int kEventTypeCount = static_cast<int>(EventType::kReplaceFailed) + 1;
const char* EventTypeName(EventType type);
std::optional<EventType> ParseEventType(std::string_view name);
// Whether the event reports something going wrong (logged as a warning, shown in red).
bool IsTrouble(EventType type);

// How a state name reads to an operator: serving, in transition, failed or at rest. The
// state names are batond's (services, generations, workers, tunnels, outcomes).
enum class StateMeaning { kServing, kTransition, kFailed, kAtRest };
StateMeaning MeaningOfState(std::string_view state);

enum class HandoverKind { kStart, kUpgrade, kRollback, kAutoRollback, kRestart };
const char* HandoverKindName(HandoverKind kind);
std::optional<HandoverKind> ParseHandoverKind(std::string_view name);

struct UpgradeRequest {
  std::string version;
  std::optional<std::vector<std::string>> command;
  std::map<std::string, std::string> env;

  nlohmann::json ToJson() const;
  // Refuses unknown fields, a missing or empty version, and values of the wrong type.
  static Result<UpgradeRequest> FromJson(const nlohmann::json& body);
};

struct HandoverResult {
  bool promoted = false;
  HandoverKind kind = HandoverKind::kUpgrade;
  std::string version;
  std::string from_version;  // empty when nothing was live
  int64_t from_generation = 0;
  int64_t generation = 0;
  std::string reason;  // why it failed
  double duration_s = 0;
  std::optional<double> drain_s;  // set when the caller waited for the old generation to drain
  nlohmann::json steps;           // progressive: each step passed, with its figures

  nlohmann::json ToJson() const;
  static Result<HandoverResult> FromJson(const nlohmann::json& j);
};

struct ServiceEvent {
  EventType type = EventType::kSpawned;
  std::string service;
  int64_t generation = 0;
  std::string version;
  int pid = 0;
  std::string message;
  double time = 0;                                  // Unix seconds
  std::optional<double> duration_s = std::nullopt;  // how long it took, where the event ends something (drained)

  nlohmann::json ToJson() const;
  static Result<ServiceEvent> FromJson(const nlohmann::json& j);
};

}  // namespace baton
