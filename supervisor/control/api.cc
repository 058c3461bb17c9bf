#include "supervisor/control/api.h"

#include <charconv>
#include <set>

#include "supervisor/base/number.h"
#include "supervisor/control/protocol.h"

namespace baton {

namespace {

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::map<std::string, std::string> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    out[std::string(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return out;
}

void ReplyError(Responder& r, const Status& s) {
  r.Reply(ControlApi::HttpStatusFor(s.code()), ControlApi::ErrorBody(ErrorCodeName(s.code()), s.message()));
}

// Fails unless every field of `body` is one of `allowed`.
Status OnlyFields(const nlohmann::json& body, std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : body.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) return Status::InvalidArgument("unknown field '" + k + "'");
  }
  return Status::Ok();
}

Status OptionalString(const nlohmann::json& body, const char* key, std::optional<std::string>& out) {
  if (!body.contains(key) || body[key].is_null()) return Status::Ok();
  if (!body[key].is_string()) return Status::InvalidArgument(std::string("field '") + key + "' must be a string");
  out = body[key].get<std::string>();
  return Status::Ok();
}

Result<UpgradeRequest> ParseUpgrade(const nlohmann::json& body) {
  if (Status s = OnlyFields(body, {"version", "command", "env"}); !s.ok()) return s;
  UpgradeRequest req;
  std::optional<std::string> version;
  if (Status s = OptionalString(body, "version", version); !s.ok()) return s;
  if (!version || version->empty()) return Status::InvalidArgument("field 'version' is required (a non-empty string)");
  req.version = *version;
  if (body.contains("command") && !body["command"].is_null()) {
    const auto& cmd = body["command"];
    auto bad = Status::InvalidArgument("field 'command' must be a non-empty array of strings");
    if (!cmd.is_array() || cmd.empty()) return bad;
    std::vector<std::string> argv;
    for (const auto& a : cmd) {
      if (!a.is_string()) return bad;
      argv.push_back(a.get<std::string>());
    }
    req.command = std::move(argv);
  }
  if (body.contains("env") && !body["env"].is_null()) {
    if (!body["env"].is_object()) return Status::InvalidArgument("field 'env' must be an object of strings");
    for (const auto& [k, v] : body["env"].items()) {
      if (!v.is_string()) return Status::InvalidArgument("field 'env." + k + "' must be a string");
      req.env[k] = v.get<std::string>();
    }
  }
  return req;
}

Result<size_t> ParseCount(const std::map<std::string, std::string>& query, const char* key, size_t def, size_t max) {
  auto it = query.find(key);
  if (it == query.end()) return def;
  auto v = ParseInteger<size_t>(it->second, std::string("query parameter '") + key + "'", 0, max);
  if (!v.ok()) return v.status();
  return *v;
}

bool IsTrue(const std::map<std::string, std::string>& query, const char* key) {
  auto it = query.find(key);
  return it != query.end() && (it->second == "1" || it->second == "true" || it->second.empty());
}

}  // namespace

int ControlApi::HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 200;
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kConflict: return 409;
    case ErrorCode::kFailedPrecondition: return 409;
    case ErrorCode::kFailed: return 422;
    case ErrorCode::kTimeout: return 504;
    case ErrorCode::kIoError: return 500;
  }
  return 500;
}

nlohmann::json ControlApi::ErrorBody(const std::string& code, const std::string& message) {
  return {{"error", {{"code", code}, {"message", message}}}};
}

void ControlApi::Handle(const ApiRequest& request, std::shared_ptr<Responder> responder) {
  size_t q = request.target.find('?');
  std::string path = request.target.substr(0, q);
  auto query = ParseQuery(q == std::string::npos ? "" : std::string_view(request.target).substr(q + 1));
  auto parts = SplitPath(path);
  auto allow = [&](const char* method) {
    if (request.method == method) return true;
    responder->Reply(
        405, ErrorBody("method_not_allowed", request.method + " is not allowed on " + path + "; use " + method));
    return false;
  };
  if (parts.size() == 1 && parts[0] == "metrics") {
    if (allow("GET")) responder->ReplyText(200, "text/plain; version=0.0.4", commands_.Metrics());
    return;
  }
  if (parts.empty() || parts[0] != protocol::kApiVersion)
    return responder->Reply(404, ErrorBody("not_found", "no such route: " + path + " (routes live under /v1)"));

  nlohmann::json body = nlohmann::json::object();
  if (!request.body.empty()) {
    body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return responder->Reply(400, ErrorBody("bad_json", "request body is not valid JSON"));
    if (!body.is_object()) return responder->Reply(400, ErrorBody("bad_json", "request body must be a JSON object"));
  }

  if (parts.size() == 2 && parts[1] == "status") {
    if (allow("GET")) responder->Reply(200, commands_.DaemonStatus());
    return;
  }
  if (parts.size() == 2 && parts[1] == "events") {
    if (allow("GET"))
      Stream(responder, [&](Commands::Line line) -> Result<uint64_t> { return commands_.FollowEvents(line); });
    return;
  }
  if (parts.size() == 2 && parts[1] == "reload") {
    if (!allow("POST")) return;
    auto r = commands_.Reload();
    if (!r.ok()) return ReplyError(*responder, r.status());
    return responder->Reply(200, *r);
  }
  if (parts.size() == 2 && parts[1] == "self-upgrade") {
    if (!allow("POST")) return;
    std::string binary;
    if (body.contains("binary")) {
      if (!body["binary"].is_string() || body["binary"].get<std::string>().empty())
        return responder->Reply(400, ErrorBody("bad_request", "'binary' must be a non-empty string (a path)"));
      binary = body["binary"].get<std::string>();
    }
    Status s = commands_.SelfUpgrade(binary, [responder](Result<nlohmann::json> answer, std::function<void()> proceed) {
      if (!answer.ok()) return ReplyError(*responder, answer.status());
      responder->OnClose(std::move(proceed));  // the answer is out: now the program may go
      responder->Reply(202, *answer);
    });
    if (!s.ok()) ReplyError(*responder, s);
    return;
  }
  if (parts.size() == 2 && parts[1] == "services") {
    if (!allow("GET")) return;
    return responder->Reply(200, {{"services", commands_.DaemonStatus()["services"]}});
  }
  if (parts.size() == 3 && parts[1] == "services") {
    if (allow("GET")) {
      auto st = commands_.ServiceStatus(parts[2]);
      if (!st.ok()) return ReplyError(*responder, st.status());
      responder->Reply(200, *st);
    }
    return;
  }
  if (parts.size() == 4 && parts[1] == "services")
    return HandleService(parts[2], parts[3], request, body, query, responder);
  responder->Reply(404, ErrorBody("not_found", "no such route: " + path));
}

void ControlApi::HandleService(const std::string& service, const std::string& action, const ApiRequest& request,
                               const nlohmann::json& body, const std::map<std::string, std::string>& query,
                               std::shared_ptr<Responder> responder) {
  const bool get = action == "history" || action == "logs";
  const char* method = get ? "GET" : "POST";
  static const std::set<std::string> kActions = {"history", "logs",  "upgrade", "rollback", "restart", "start",
                                                 "stop",    "scale", "signal",  "promote",  "pause",   "resume"};
  if (!kActions.count(action))
    return responder->Reply(404, ErrorBody("not_found", "no such route: /v1/services/" + service + "/" + action));
  if (request.method != method)
    return responder->Reply(405, ErrorBody("method_not_allowed", request.method + " is not allowed on /v1/services/" +
                                                                     service + "/" + action + "; use " + method));
  auto fail = [&](const Status& s) { ReplyError(*responder, s); };

  if (action == "history") {
    auto h = commands_.History(service);
    return h.ok() ? responder->Reply(200, *h) : fail(h.status());
  }
  if (action == "logs") {
    auto lines = ParseCount(query, "lines", 100, 100000);
    if (!lines.ok()) return fail(lines.status());
    if (!IsTrue(query, "follow")) {
      auto l = commands_.Logs(service, *lines);
      return l.ok() ? responder->Reply(200, *l) : fail(l.status());
    }
    auto past = commands_.Logs(service, *lines);
    if (!past.ok()) return fail(past.status());
    responder->StartStream();
    for (const auto& line : (*past)["lines"]) responder->StreamLine(line);
    Stream(responder, [&](Commands::Line line) { return commands_.FollowLogs(service, line); });
    return;
  }
  if (action == "upgrade") {
    auto req = ParseUpgrade(body);
    if (!req.ok()) return fail(req.status());
    return RunLong(request, responder,
                   [&](auto progress, auto done) { return commands_.Upgrade(service, *req, progress, done); });
  }
  if (action == "rollback") {
    std::optional<std::string> to;
    if (Status s = OnlyFields(body, {"to"}); !s.ok()) return fail(s);
    if (Status s = OptionalString(body, "to", to); !s.ok()) return fail(s);
    return RunLong(request, responder,
                   [&](auto progress, auto done) { return commands_.Rollback(service, to, progress, done); });
  }
  if (action == "promote" || action == "pause" || action == "resume") {
    if (Status s = OnlyFields(body, {}); !s.ok()) return fail(s);
    auto r = action == "promote" ? commands_.PromoteRollout(service)
             : action == "pause" ? commands_.PauseRollout(service)
                                 : commands_.ResumeRollout(service);
    return r.ok() ? responder->Reply(200, *r) : fail(r.status());
  }
  if (action == "restart" || action == "start") {
    if (Status s = OnlyFields(body, {}); !s.ok()) return fail(s);
    return RunLong(request, responder, [&](auto progress, auto done) {
      return action == "restart" ? commands_.Restart(service, progress, done)
                                 : commands_.Start(service, progress, done);
    });
  }
  if (action == "stop") {
    if (Status s = OnlyFields(body, {}); !s.ok()) return fail(s);
    auto streaming = std::make_shared<bool>(false);  // true once the stream's header is out
    Status s = commands_.Stop(
        service,
        [responder, streaming](const ServiceEvent& e) {
          if (*streaming) responder->StreamLine({{"event", e.ToJson()}});
        },
        [responder, streaming, service] {
          nlohmann::json result = {{"result", {{"service", service}, {"stopped", true}}}};
          if (!*streaming) return responder->Reply(200, result);
          responder->StreamLine(result);
          responder->EndStream();
        });
    if (!s.ok()) return fail(s);
    if (request.wants_stream) {
      *streaming = true;
      responder->StartStream();
    }
    return;
  }
  if (action == "scale") {
    if (Status s = OnlyFields(body, {"replicas"}); !s.ok()) return fail(s);
    if (!body.contains("replicas") || !body["replicas"].is_number_integer())
      return fail(Status::InvalidArgument("field 'replicas' is required (an integer)"));
    // Read at full width, then range-checked: get<int>() would wrap 4294967297 to 1.
    const nlohmann::json& n = body["replicas"];
    if (n.is_number_unsigned() ? n.get<uint64_t>() > 1024 : n.get<int64_t>() < 1 || n.get<int64_t>() > 1024)
      return fail(Status::InvalidArgument("field 'replicas' must be between 1 and 1024"));
    auto r = commands_.Scale(service, n.get<int>());
    return r.ok() ? responder->Reply(200, *r) : fail(r.status());
  }
  // signal
  if (Status s = OnlyFields(body, {"signal"}); !s.ok()) return fail(s);
  std::optional<std::string> sig;
  if (Status s = OptionalString(body, "signal", sig); !s.ok()) return fail(s);
  if (!sig) return fail(Status::InvalidArgument("field 'signal' is required, e.g. \"HUP\""));
  auto r = commands_.Signal(service, *sig);
  return r.ok() ? responder->Reply(200, *r) : fail(r.status());
}

// A handover-like operation: the outcome as one answer, or progress then the outcome.
// With ?wait=drained a promotion is answered once the previous generation has drained.
void ControlApi::RunLong(const ApiRequest& request, std::shared_ptr<Responder> responder,
                         const std::function<Status(Commands::Progress, Commands::Done)>& start) {
  struct State {
    bool streaming = false;
    bool wait_drain = false;
    std::map<int64_t, double> drained;  // generation -> seconds, seen so far
    std::optional<HandoverResult> pending;
    uint64_t subscription = 0;
  };
  auto st = std::make_shared<State>();
  auto query = ParseQuery(request.target.find('?') == std::string::npos
                              ? ""
                              : std::string_view(request.target).substr(request.target.find('?') + 1));
  st->wait_drain = query["wait"] == "drained";
  Commands& commands = commands_;
  auto finish = [responder, st, &commands](HandoverResult r) {
    if (st->subscription) commands.Unsubscribe(std::exchange(st->subscription, 0));
    if (st->streaming) {
      responder->StreamLine({{"result", r.ToJson()}});
      return responder->EndStream();
    }
    if (r.promoted) return responder->Reply(200, {{"result", r.ToJson()}});
    nlohmann::json b = ErrorBody("handover_failed", r.reason);
    b["result"] = r.ToJson();
    responder->Reply(422, b);
  };
  if (st->wait_drain) {
    // Subscribed before the operation starts: a quick drain cannot be missed.
    st->subscription = commands_.FollowEvents([st, finish](const nlohmann::json& e) {
      if (e.value("type", "") != "drained") return;
      double secs = e.value("duration_s", 0.0);
      st->drained[e.value("generation", int64_t{0})] = secs;
      if (st->pending && st->pending->from_generation == e.value("generation", int64_t{0})) {
        HandoverResult r = *std::exchange(st->pending, std::nullopt);
        r.drain_s = secs;
        finish(r);
      }
    });
  }
  Commands::Progress progress = [responder, st](const ServiceEvent& e) {
    if (st->streaming) responder->StreamLine({{"event", e.ToJson()}});
  };
  Commands::Done done = [st, finish](const HandoverResult& r) {
    if (!st->wait_drain || !r.promoted || r.from_generation == 0) return finish(r);
    if (auto it = st->drained.find(r.from_generation); it != st->drained.end()) {
      HandoverResult copy = r;
      copy.drain_s = it->second;
      return finish(copy);
    }
    st->pending = r;
  };
  Status s = start(progress, done);
  if (!s.ok()) {
    if (st->subscription) commands_.Unsubscribe(std::exchange(st->subscription, 0));
    return ReplyError(*responder, s);
  }
  responder->OnClose([st, &commands] {
    if (st->subscription) commands.Unsubscribe(std::exchange(st->subscription, 0));
  });
  if (request.wants_stream) {
    st->streaming = true;
    responder->StartStream();
  }
}

// An endless NDJSON stream, until the client goes away.
void ControlApi::Stream(std::shared_ptr<Responder> responder,
                        const std::function<Result<uint64_t>(Commands::Line)>& subscribe) {
  std::weak_ptr<Responder> weak = responder;
  auto id = subscribe([weak](const nlohmann::json& line) {
    if (auto r = weak.lock()) r->StreamLine(line);
  });
  if (!id.ok()) return ReplyError(*responder, id.status());
  responder->StartStream();  // no-op if already started
  Commands& commands = commands_;
  responder->OnClose([&commands, id = *id] { commands.Unsubscribe(id); });
}

}  // namespace baton
