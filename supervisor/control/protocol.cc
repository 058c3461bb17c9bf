#include "supervisor/control/protocol.h"

#include <array>
#include <utility>

#include "supervisor/base/json_fields.h"

namespace baton {

namespace {

template <typename Enum, size_t N>
std::optional<Enum> Lookup(const std::array<std::pair<Enum, const char*>, N>& names, std::string_view name) {
  for (const auto& [value, text] : names)
    if (name == text) return value;
  return std::nullopt;
}

template <typename Enum, size_t N>
const char* NameOf(const std::array<std::pair<Enum, const char*>, N>& names, Enum value) {
  for (const auto& [v, text] : names)
    if (v == value) return text;
  return "?";
}

using protocol::ServiceAction;

constexpr std::array<std::pair<ServiceAction, const char*>, 13> kActions = {{
    {ServiceAction::kHistory, "history"},
    {ServiceAction::kLogs, "logs"},
    {ServiceAction::kUpgrade, "upgrade"},
    {ServiceAction::kRollback, "rollback"},
    {ServiceAction::kRestart, "restart"},
    {ServiceAction::kStart, "start"},
    {ServiceAction::kStop, "stop"},
    {ServiceAction::kScale, "scale"},
    {ServiceAction::kSignal, "signal"},
    {ServiceAction::kPromote, "promote"},
    {ServiceAction::kPause, "pause"},
    {ServiceAction::kResume, "resume"},
    {ServiceAction::kRecycle, "recycle"},
}};

constexpr std::array<std::pair<EventType, const char*>, kEventTypeCount> kEventTypes = {{
    {EventType::kSpawned, "spawned"},
    {EventType::kReady, "ready"},
    {EventType::kNotReady, "not_ready"},
    {EventType::kHandoverStarted, "handover_started"},
    {EventType::kStep, "step"},
    {EventType::kStepPassed, "step_passed"},
    {EventType::kPaused, "paused"},
    {EventType::kResumed, "resumed"},
    {EventType::kBatchReady, "batch_ready"},
    {EventType::kPromote, "promote"},
    {EventType::kPromoted, "promoted"},
    {EventType::kBaked, "baked"},
    {EventType::kRollingBack, "rolling_back"},
    {EventType::kDraining, "draining"},
    {EventType::kProxyDrain, "proxy_drain"},
    {EventType::kDrained, "drained"},
    {EventType::kDrainTimeout, "drain_timeout"},
    {EventType::kExited, "exited"},
    {EventType::kGenerationExited, "generation_exited"},
    {EventType::kCrashed, "crashed"},
    {EventType::kKill, "kill"},
    {EventType::kRestarting, "restarting"},
    {EventType::kRestartFailed, "restart_failed"},
    {EventType::kFailed, "failed"},
    {EventType::kFatal, "fatal"},
    {EventType::kFdStore, "fd_store"},
    {EventType::kScaled, "scaled"},
    {EventType::kStopping, "stopping"},
    {EventType::kStopped, "stopped"},
    {EventType::kHistoryError, "history_error"},
    {EventType::kSelfUpgraded, "self_upgraded"},
    {EventType::kSelfUpgradeFailed, "self_upgrade_failed"},
    {EventType::kTunnelUp, "tunnel_up"},
    {EventType::kTunnelDown, "tunnel_down"},
    {EventType::kTunnelError, "tunnel_error"},
    {EventType::kHookFailed, "hook_failed"},
    {EventType::kUnhealthy, "unhealthy"},
    {EventType::kReplacing, "replacing"},
    {EventType::kReplaced, "replaced"},
    {EventType::kReplaceFailed, "replace_failed"},
}};

constexpr std::array<std::pair<HandoverKind, const char*>, 5> kKinds = {{
    {HandoverKind::kStart, "start"},
    {HandoverKind::kUpgrade, "upgrade"},
    {HandoverKind::kRollback, "rollback"},
    {HandoverKind::kAutoRollback, "automatic rollback"},
    {HandoverKind::kRestart, "restart"},
}};

Status WrongType(const char* key, const char* what) {
  return Status::InvalidArgument(std::string("field '") + key + "' must be " + what);
}

}  // namespace

namespace protocol {

const char* ActionName(ServiceAction action) { return NameOf(kActions, action); }
std::optional<ServiceAction> ParseAction(std::string_view name) { return Lookup(kActions, name); }
const char* MethodOf(ServiceAction action) {
  return action == ServiceAction::kHistory || action == ServiceAction::kLogs ? "GET" : "POST";
}

std::string ServicePath(std::string_view service) { return std::string(kServicesPath) + "/" + std::string(service); }
std::string ActionPath(std::string_view service, ServiceAction action) {
  return ServicePath(service) + "/" + ActionName(action);
}

std::optional<ServiceRoute> ParseServicePath(std::string_view path) {
  const std::string prefix = std::string(kServicesPath) + "/";
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view rest = path.substr(prefix.size());
  size_t slash = rest.find('/');
  ServiceRoute route{std::string(rest.substr(0, slash)), std::nullopt};
  if (route.service.empty()) return std::nullopt;
  if (slash == std::string_view::npos || slash + 1 == rest.size()) return route;
  route.action = ParseAction(rest.substr(slash + 1));
  if (!route.action) return std::nullopt;
  return route;
}

Target ParseTarget(std::string_view target) {
  Target out;
  size_t q = target.find('?');
  out.path = std::string(target.substr(0, q));
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    out.query[std::string(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return out;
}

}  // namespace protocol

const char* EventTypeName(EventType type) { return NameOf(kEventTypes, type); }
std::optional<EventType> ParseEventType(std::string_view name) { return Lookup(kEventTypes, name); }

bool IsTrouble(EventType type) {
  switch (type) {
    case EventType::kFailed:
    case EventType::kFatal:
    case EventType::kCrashed:
    case EventType::kRestartFailed:
    case EventType::kKill:
    case EventType::kHistoryError:
    case EventType::kSelfUpgradeFailed:
    case EventType::kTunnelError:
    case EventType::kHookFailed:
    case EventType::kUnhealthy:
    case EventType::kReplaceFailed: return true;
    default: return false;
  }
}

StateMeaning MeaningOfState(std::string_view s) {
  if (s == "running" || s == "live" || s == "ready" || s == "promoted" || s == "up") return StateMeaning::kServing;
  if (s == "failed" || s == "fatal" || s == "down") return StateMeaning::kFailed;
  if (s == "stopped" || s == "exited") return StateMeaning::kAtRest;
  return StateMeaning::kTransition;  // starting, upgrading, baking, draining, stopping, backoff, connecting
}

const char* HandoverKindName(HandoverKind kind) { return NameOf(kKinds, kind); }
std::optional<HandoverKind> ParseHandoverKind(std::string_view name) { return Lookup(kKinds, name); }

nlohmann::json UpgradeRequest::ToJson() const {
  nlohmann::json j = {{"version", version}};
  if (command) j["command"] = *command;
  if (!env.empty()) j["env"] = env;
  return j;
}

Result<UpgradeRequest> UpgradeRequest::FromJson(const nlohmann::json& body) {
  if (Status s = OnlyFields(body, {"version", "command", "env"}); !s.ok()) return s;
  UpgradeRequest req;
  if (Status s = ReadField(body, "version", req.version); !s.ok()) return s;
  if (req.version.empty()) return Status::InvalidArgument("field 'version' is required (a non-empty string)");
  if (body.contains("command") && !body["command"].is_null()) {
    const auto& cmd = body["command"];
    auto bad = WrongType("command", "a non-empty array of strings");
    if (!cmd.is_array() || cmd.empty()) return bad;
    std::vector<std::string> argv;
    for (const auto& a : cmd) {
      if (!a.is_string()) return bad;
      argv.push_back(a.get<std::string>());
    }
    req.command = std::move(argv);
  }
  if (body.contains("env") && !body["env"].is_null()) {
    if (!body["env"].is_object()) return WrongType("env", "an object of strings");
    for (const auto& [k, v] : body["env"].items()) {
      if (!v.is_string()) return Status::InvalidArgument("field 'env." + k + "' must be a string");
      req.env[k] = v.get<std::string>();
    }
  }
  return req;
}

nlohmann::json HandoverResult::ToJson() const {
  nlohmann::json j = {{"promoted", promoted},
                      {"kind", HandoverKindName(kind)},
                      {"version", version},
                      {"generation", generation},
                      {"duration_s", duration_s}};
  if (!from_version.empty()) {
    j["from_version"] = from_version;
    j["from_generation"] = from_generation;
  }
  if (drain_s) j["drain_s"] = *drain_s;
  if (!reason.empty()) j["reason"] = reason;
  if (steps.is_array() && !steps.empty()) j["steps"] = steps;
  return j;
}

Result<HandoverResult> HandoverResult::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::InvalidArgument("a handover result must be a JSON object");
  HandoverResult r;
  std::string kind;
  double drain = -1;
  if (Status s = FirstError({ReadField(j, "promoted", r.promoted), ReadField(j, "kind", kind),
                             ReadField(j, "version", r.version), ReadField(j, "generation", r.generation),
                             ReadField(j, "duration_s", r.duration_s), ReadField(j, "from_version", r.from_version),
                             ReadField(j, "from_generation", r.from_generation), ReadField(j, "drain_s", drain),
                             ReadField(j, "reason", r.reason)});
      !s.ok())
    return s;
  if (!kind.empty()) {
    auto k = ParseHandoverKind(kind);
    if (!k) return Status::InvalidArgument("field 'kind': unknown handover kind '" + kind + "'");
    r.kind = *k;
  }
  if (drain >= 0) r.drain_s = drain;
  if (j.contains("steps")) r.steps = j["steps"];
  return r;
}

nlohmann::json ServiceEvent::ToJson() const {
  nlohmann::json j = {{"type", EventTypeName(type)}, {"service", service}, {"time", time}};
  if (generation) j["generation"] = generation;
  if (!version.empty()) j["version"] = version;
  if (pid) j["pid"] = pid;
  if (!message.empty()) j["message"] = message;
  if (duration_s) j["duration_s"] = *duration_s;
  return j;
}

Result<ServiceEvent> ServiceEvent::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::InvalidArgument("an event must be a JSON object");
  ServiceEvent e;
  std::string type;
  double duration = -1;
  if (Status s = FirstError({ReadField(j, "type", type), ReadField(j, "service", e.service),
                             ReadField(j, "generation", e.generation), ReadField(j, "version", e.version),
                             ReadField(j, "pid", e.pid), ReadField(j, "message", e.message),
                             ReadField(j, "time", e.time), ReadField(j, "duration_s", duration)});
      !s.ok())
    return s;
  auto t = ParseEventType(type);
  if (!t) return Status::InvalidArgument("field 'type': unknown event type '" + type + "'");
  e.type = *t;
  if (duration >= 0) e.duration_s = duration;
  return e;
}

}  // namespace baton
