#include "supervisor/control/api.h"

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

void ReplyError(Responder& r, const Status& s) {
  r.Reply(ControlApi::HttpStatusFor(s.code()), ControlApi::ErrorBody(ErrorCodeName(s.code()), s.message()));
}

// Reads an optional string field; an error names the field and the expected type.
Status OptionalString(const nlohmann::json& body, const char* key, std::optional<std::string>& out) {
  if (!body.contains(key) || body[key].is_null()) return Status::Ok();
  if (!body[key].is_string()) return Status::InvalidArgument(std::string("field '") + key + "' must be a string");
  out = body[key].get<std::string>();
  return Status::Ok();
}

Result<UpgradeRequest> ParseUpgrade(const nlohmann::json& body) {
  UpgradeRequest req;
  std::optional<std::string> version;
  if (Status s = OptionalString(body, "version", version); !s.ok()) return s;
  if (!version || version->empty()) return Status::InvalidArgument("field 'version' is required (a non-empty string)");
  req.version = *version;
  if (body.contains("command") && !body["command"].is_null()) {
    const auto& cmd = body["command"];
    if (!cmd.is_array() || cmd.empty()) return Status::InvalidArgument("field 'command' must be a non-empty array of strings");
    std::vector<std::string> argv;
    for (const auto& a : cmd) {
      if (!a.is_string()) return Status::InvalidArgument("field 'command' must be a non-empty array of strings");
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
  for (const auto& [k, v] : body.items())
    if (k != "version" && k != "command" && k != "env") return Status::InvalidArgument("unknown field '" + k + "'");
  return req;
}

}  // namespace

int ControlApi::HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 200;
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kConflict: return 409;
    case ErrorCode::kFailedPrecondition: return 503;
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
  std::string path = request.target.substr(0, request.target.find('?'));
  auto parts = SplitPath(path);
  auto method_not_allowed = [&](const char* allowed) {
    responder->Reply(405, ErrorBody("method_not_allowed", request.method + " is not allowed on " + path +
                                                              "; use " + allowed));
  };
  if (parts.empty() || parts[0] != protocol::kApiVersion) {
    return responder->Reply(404, ErrorBody("not_found", "no such route: " + path + " (routes live under /v1)"));
  }
  if (parts.size() == 2 && parts[1] == "status") {
    if (request.method != "GET") return method_not_allowed("GET");
    return responder->Reply(200, commands_.DaemonStatus());
  }
  if (parts.size() >= 3 && parts[1] == "services") {
    const std::string& service = parts[2];
    if (parts.size() == 3) {
      if (request.method != "GET") return method_not_allowed("GET");
      auto st = commands_.ServiceStatus(service);
      if (!st.ok()) return ReplyError(*responder, st.status());
      return responder->Reply(200, *st);
    }
    if (parts.size() == 4 && parts[3] == "history") {
      if (request.method != "GET") return method_not_allowed("GET");
      auto h = commands_.History(service);
      if (!h.ok()) return ReplyError(*responder, h.status());
      return responder->Reply(200, *h);
    }
    if (parts.size() == 4 && (parts[3] == "upgrade" || parts[3] == "rollback")) {
      if (request.method != "POST") return method_not_allowed("POST");
      return RunHandover(service, request, std::move(responder), parts[3] == "rollback");
    }
  }
  responder->Reply(404, ErrorBody("not_found", "no such route: " + path));
}

void ControlApi::RunHandover(const std::string& service, const ApiRequest& request,
                             std::shared_ptr<Responder> responder, bool rollback) {
  nlohmann::json body = nlohmann::json::object();
  if (!request.body.empty()) {
    body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return responder->Reply(400, ErrorBody("bad_json", "request body is not valid JSON"));
    if (!body.is_object()) return responder->Reply(400, ErrorBody("bad_json", "request body must be a JSON object"));
  }
  auto streaming = std::make_shared<bool>(false);
  Commands::Progress progress = [responder, streaming](const ServiceEvent& e) {
    if (*streaming) responder->StreamLine({{"event", e.ToJson()}});
  };
  Commands::Done done = [responder, streaming](const HandoverResult& r) {
    if (*streaming) {
      responder->StreamLine({{"result", r.ToJson()}});
      return responder->EndStream();
    }
    if (r.promoted) return responder->Reply(200, {{"result", r.ToJson()}});
    nlohmann::json b = ErrorBody("handover_failed", r.reason);
    b["result"] = r.ToJson();
    responder->Reply(422, b);
  };
  Status s;
  if (rollback) {
    std::optional<std::string> to;
    if (Status f = OptionalString(body, "to", to); !f.ok()) return ReplyError(*responder, f);
    for (const auto& [k, v] : body.items())
      if (k != "to") return ReplyError(*responder, Status::InvalidArgument("unknown field '" + k + "'"));
    s = commands_.Rollback(service, to, progress, done);
  } else {
    auto req = ParseUpgrade(body);
    if (!req.ok()) return ReplyError(*responder, req.status());
    s = commands_.Upgrade(service, *req, progress, done);
  }
  if (!s.ok()) return ReplyError(*responder, s);
  if (request.wants_stream) {
    *streaming = true;
    responder->StartStream();
  }
}

}  // namespace baton
