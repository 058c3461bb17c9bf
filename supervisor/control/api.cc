#include "supervisor/control/api.h"

#include "supervisor/base/duration.h"
#include "supervisor/base/json_fields.h"
#include "supervisor/base/number.h"
#include "supervisor/control/protocol.h"

namespace baton {

namespace {

void ReplyError(Responder& r, const Status& s) {
  r.Reply(ControlApi::HttpStatusFor(s.code()), ControlApi::ErrorBody(ErrorCodeName(s.code()), s.message()));
}

void ReplyJsonText(Responder& r, std::string json) {
  json += '\n';  // as Reply ends a JSON answer
  r.ReplyText(200, "application/json", std::move(json));
}

Status OptionalString(const nlohmann::json& body, const char* key, std::optional<std::string>& out) {
  if (!body.contains(key) || body[key].is_null()) return Status::Ok();
  if (!body[key].is_string()) return Status::InvalidArgument(std::string("field '") + key + "' must be a string");
  out = body[key].get<std::string>();
  return Status::Ok();
}

// The end of a handover: the last line of a stream, or the one answer (422 with the
// error when the new generation was not promoted).
void ReplyOutcome(Responder& responder, bool streaming, const HandoverResult& r) {
  if (streaming) {
    responder.StreamLine({{"result", r.ToJson()}});
    return responder.EndStream();
  }
  if (r.promoted) return responder.Reply(200, {{"result", r.ToJson()}});
  nlohmann::json b = ControlApi::ErrorBody("handover_failed", r.reason);
  b["result"] = r.ToJson();
  responder.Reply(422, b);
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
  const protocol::Target target = protocol::ParseTarget(request.target);
  const std::string& path = target.path;
  auto allow = [&](const char* method) {
    if (request.method == method) return true;
    responder->Reply(
        405, ErrorBody("method_not_allowed", request.method + " is not allowed on " + path + "; use " + method));
    return false;
  };
  if (path == protocol::kMetricsPath) {
    if (allow("GET")) responder->ReplyText(200, protocol::kPrometheusText, commands_.Metrics());
    return;
  }
  const std::string api_root = std::string("/") + protocol::kApiVersion + "/";
  if (path.rfind(api_root, 0) != 0)
    return responder->Reply(404, ErrorBody("not_found", "no such route: " + path + " (routes live under /v1)"));

  nlohmann::json body = request.body.empty() ? nlohmann::json::object()
                                             : nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object())
    return responder->Reply(400, ErrorBody("bad_json", body.is_discarded() ? "request body is not valid JSON"
                                                                           : "request body must be a JSON object"));
  if (path == protocol::kStatusPath) {
    if (!allow("GET")) return;
    if (IsTrue(target.query, "follow")) return FollowStatus(target.query, responder);
    return ReplyJsonText(*responder, commands_.StatusText(IsTrue(target.query, "usage")));
  }
  if (path == protocol::kDashboardPath) {
    if (!allow("GET")) return;
    auto r = commands_.Dashboard();
    return r.ok() ? responder->Reply(200, *r) : ReplyError(*responder, r.status());
  }
  if (path == protocol::kEventsPath) {
    if (allow("GET"))
      Stream(responder, [&](Commands::Line line) -> Result<uint64_t> { return commands_.FollowEvents(line); });
    return;
  }
  if (path == protocol::kReloadPath) {
    if (!allow("POST")) return;
    auto r = commands_.Reload();
    if (!r.ok()) return ReplyError(*responder, r.status());
    return responder->Reply(200, *r);
  }
  if (path == protocol::kSelfUpgradePath) {
    if (allow("POST")) SelfUpgrade(body, responder);
    return;
  }
  if (path == protocol::kServicesPath) {
    if (!allow("GET")) return;
    return ReplyJsonText(*responder, commands_.ServicesText());
  }
  if (auto route = protocol::ParseServicePath(path)) {
    if (!route->action) {
      if (!allow("GET")) return;
      auto st = commands_.ServiceStatusText(route->service);
      return st.ok() ? ReplyJsonText(*responder, *st) : ReplyError(*responder, st.status());
    }
    if (allow(protocol::MethodOf(*route->action)))
      HandleService(route->service, *route->action, request, target.query, body, responder);
    return;
  }
  responder->Reply(404, ErrorBody("not_found", "no such route: " + path));
}

void ControlApi::SelfUpgrade(const nlohmann::json& body, std::shared_ptr<Responder> responder) {
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
}

void ControlApi::HandleService(const std::string& service, protocol::ServiceAction action, const ApiRequest& request,
                               const std::map<std::string, std::string>& query, const nlohmann::json& body,
                               std::shared_ptr<Responder> responder) {
  using protocol::ServiceAction;
  auto fail = [&](const Status& s) { ReplyError(*responder, s); };
  auto reply = [&](Result<nlohmann::json> r) { r.ok() ? responder->Reply(200, *r) : fail(r.status()); };
  auto run = [&](const std::function<Status(Commands::Progress, Commands::Done)>& start) {
    RunLong(request, query, responder, start);
  };
  switch (action) {
    case ServiceAction::kHistory: return reply(commands_.History(service));
    case ServiceAction::kLogs: return Logs(service, query, responder);
    case ServiceAction::kUpgrade: {
      auto req = UpgradeRequest::FromJson(body);
      if (!req.ok()) return fail(req.status());
      return run([&](auto progress, auto done) { return commands_.Upgrade(service, *req, progress, done); });
    }
    case ServiceAction::kRollback: {
      std::optional<std::string> to;
      if (Status s = OnlyFields(body, {"to"}); !s.ok()) return fail(s);
      if (Status s = OptionalString(body, "to", to); !s.ok()) return fail(s);
      return run([&](auto progress, auto done) { return commands_.Rollback(service, to, progress, done); });
    }
    case ServiceAction::kPromote:
    case ServiceAction::kPause:
    case ServiceAction::kResume: {
      if (Status s = OnlyFields(body, {}); !s.ok()) return fail(s);
      return reply(action == ServiceAction::kPromote ? commands_.PromoteRollout(service)
                   : action == ServiceAction::kPause ? commands_.PauseRollout(service)
                                                     : commands_.ResumeRollout(service));
    }
    case ServiceAction::kRestart:
    case ServiceAction::kStart: {
      if (Status s = OnlyFields(body, {}); !s.ok()) return fail(s);
      return run([&](auto progress, auto done) {
        return action == ServiceAction::kRestart ? commands_.Restart(service, progress, done)
                                                 : commands_.Start(service, progress, done);
      });
    }
    case ServiceAction::kStop: return Stop(service, request, body, responder);
    case ServiceAction::kRecycle:
      if (Status s = OnlyFields(body, {}); !s.ok()) return fail(s);
      return reply(commands_.Recycle(service));
    case ServiceAction::kScale: {
      if (Status s = OnlyFields(body, {"replicas"}); !s.ok()) return fail(s);
      if (!body.contains("replicas") || !body["replicas"].is_number_integer())
        return fail(Status::InvalidArgument("field 'replicas' is required (an integer)"));
      // Read at full width, then range-checked: get<int>() would wrap 4294967297 to 1.
      const nlohmann::json& n = body["replicas"];
      if (n.is_number_unsigned() ? n.get<uint64_t>() > 1024 : n.get<int64_t>() < 1 || n.get<int64_t>() > 1024)
        return fail(Status::InvalidArgument("field 'replicas' must be between 1 and 1024"));
      return reply(commands_.Scale(service, n.get<int>()));
    }
    case ServiceAction::kSignal: {
      if (Status s = OnlyFields(body, {"signal"}); !s.ok()) return fail(s);
      std::optional<std::string> sig;
      if (Status s = OptionalString(body, "signal", sig); !s.ok()) return fail(s);
      if (!sig) return fail(Status::InvalidArgument("field 'signal' is required, e.g. \"HUP\""));
      return reply(commands_.Signal(service, *sig));
    }
  }
}

void ControlApi::Logs(const std::string& service, const std::map<std::string, std::string>& query,
                      std::shared_ptr<Responder> responder) {
  auto lines = ParseCount(query, "lines", 100, 100000);
  if (!lines.ok()) return ReplyError(*responder, lines.status());
  auto past = commands_.Logs(service, *lines);
  if (!past.ok()) return ReplyError(*responder, past.status());
  if (!IsTrue(query, "follow")) return responder->Reply(200, *past);
  responder->StartStream();
  for (const auto& line : (*past)["lines"]) responder->StreamLine(line);
  Stream(responder, [&](Commands::Line line) { return commands_.FollowLogs(service, line); });
}

void ControlApi::Stop(const std::string& service, const ApiRequest& request, const nlohmann::json& body,
                      std::shared_ptr<Responder> responder) {
  if (Status s = OnlyFields(body, {}); !s.ok()) return ReplyError(*responder, s);
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
  if (!s.ok()) return ReplyError(*responder, s);
  if (request.wants_stream) {
    *streaming = true;
    responder->StartStream();
  }
}

// A handover-like operation: the outcome as one answer, or progress then the outcome.
// With ?wait=drained a promotion is answered once the previous generation has drained.
void ControlApi::RunLong(const ApiRequest& request, const std::map<std::string, std::string>& query,
                         std::shared_ptr<Responder> responder,
                         const std::function<Status(Commands::Progress, Commands::Done)>& start) {
  struct State {
    bool streaming = false;
    bool wait_drain = false;
    std::map<int64_t, double> drained;  // generation -> seconds, seen so far
    std::optional<HandoverResult> pending;
    uint64_t subscription = 0;
  };
  auto st = std::make_shared<State>();
  auto wait = query.find("wait");
  st->wait_drain = wait != query.end() && wait->second == "drained";
  Commands& commands = commands_;
  auto unsubscribe = [st, &commands] {
    if (st->subscription) commands.Unsubscribe(std::exchange(st->subscription, 0));
  };
  auto finish = [responder, st, unsubscribe](HandoverResult r) {
    unsubscribe();
    ReplyOutcome(*responder, st->streaming, r);
  };
  if (st->wait_drain) {
    // Subscribed before the operation starts: a quick drain cannot be missed.
    st->subscription = commands_.FollowEvents([st, finish](const nlohmann::json& e) {
      if (e.value("type", "") != EventTypeName(EventType::kDrained)) return;
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
    unsubscribe();
    return ReplyError(*responder, s);
  }
  responder->OnClose(unsubscribe);
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
  Streaming(*responder, std::move(id));
}

void ControlApi::FollowStatus(const std::map<std::string, std::string>& query, std::shared_ptr<Responder> responder) {
  Duration interval = std::chrono::seconds(2);
  if (auto it = query.find("interval"); it != query.end()) {
    auto d = ParseDuration(it->second);
    if (!d || *d < std::chrono::milliseconds(100) || *d > std::chrono::hours(1))
      return responder->Reply(400, ErrorBody("invalid_argument",
                                             "query parameter 'interval' must be a duration "
                                             "from 100ms to 1h, such as 2s"));
    interval = *d;
  }
  std::weak_ptr<Responder> weak = responder;
  Streaming(*responder, commands_.FollowStatus(interval, [weak](std::string text) {
    if (auto r = weak.lock()) r->StreamText(std::move(text));
  }));
}

void ControlApi::Streaming(Responder& responder, Result<uint64_t> id) {
  if (!id.ok()) return ReplyError(responder, id.status());
  responder.StartStream();  // no-op if already started
  Commands& commands = commands_;
  responder.OnClose([&commands, id = *id] { commands.Unsubscribe(id); });
}

}  // namespace baton
