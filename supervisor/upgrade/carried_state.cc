#include "supervisor/upgrade/carried_state.h"

#include "supervisor/base/json_fields.h"
#include "supervisor/base/json_text.h"

namespace baton {

namespace {

using Json = nlohmann::json;

// The first failed read, with where it was: "services[1].listeners[0]: field 'fd' ...".
Status In(const std::string& where, Status s) {
  return s.ok() ? s : Status::InvalidArgument(where + ": " + s.message());
}

Json ListenerJson(const CarriedListener& l) {
  return {{"name", l.name}, {"address", l.address}, {"fd", l.fd}, {"from_systemd", l.from_systemd}};
}

Result<CarriedListener> ReadListener(const Json& j) {
  CarriedListener l;
  if (Status s = FirstError({ReadField(j, "name", l.name, true), ReadField(j, "address", l.address, true),
                             ReadField(j, "fd", l.fd, true), ReadField(j, "from_systemd", l.from_systemd)});
      !s.ok())
    return s;
  return l;
}

Json ServiceJson(const CarriedService& s) {
  Json listeners = Json::array();
  for (const auto& l : s.listeners) listeners.push_back(ListenerJson(l));
  return {{"name", s.name},         {"listeners", std::move(listeners)},
          {"service", s.service},   {"proxies", s.proxies},
          {"steering", s.steering}, {"logs", s.logs}};
}

Result<CarriedService> ReadService(const Json& j) {
  CarriedService s;
  Json listeners = Json::array(), proxies = Json::object(), logs = Json::array();
  if (Status st = FirstError({ReadField(j, "name", s.name, true), ReadField(j, "listeners", listeners),
                              ReadField(j, "service", s.service, true), ReadField(j, "proxies", proxies),
                              ReadField(j, "steering", s.steering), ReadField(j, "logs", logs)});
      !st.ok())
    return st;
  if (!listeners.is_array() || !proxies.is_object() || !logs.is_array())
    return Status::InvalidArgument("listeners and logs must be arrays, proxies an object");
  for (size_t i = 0; i < listeners.size(); ++i) {
    auto l = ReadListener(listeners[i]);
    if (!l.ok()) return In("listeners[" + std::to_string(i) + "]", l.status());
    s.listeners.push_back(std::move(*l));
  }
  for (const auto& [name, proxy] : proxies.items()) s.proxies[name] = proxy;
  s.logs.assign(logs.begin(), logs.end());
  return s;
}

Status ReadExec(const Json& j, CarriedExec& e) {
  return FirstError({ReadField(j, "binary", e.binary), ReadField(j, "attempt", e.attempt),
                     ReadField(j, "from_version", e.from_version), ReadField(j, "to_version", e.to_version),
                     ReadField(j, "at", e.at)});
}

}  // namespace

const CarriedListener* CarriedService::FindListener(std::string_view name) const {
  for (const auto& l : listeners)
    if (l.name == name) return &l;
  return nullptr;
}

const CarriedService* CarriedState::FindService(std::string_view name) const {
  for (const auto& s : services)
    if (s.name == name) return &s;
  return nullptr;
}

std::string EncodeCarriedState(const CarriedState& state) {
  Json services = Json::array();
  for (const auto& s : state.services) services.push_back(ServiceJson(s));
  Json j = {{"format", state.format},
            {"version", state.version},
            {"binary", state.binary},
            {"config", {{"path", state.config_path}, {"text", state.config_text}}},
            {"started_wall", state.started_wall},
            {"orphans_reaped", state.orphans_reaped},
            {"notify_ignored", state.notify_ignored},
            {"announced_ready", state.announced_ready},
            {"self_upgrade", state.self_upgrade},
            {"control_fd", state.control_fd},
            {"notify_fd", state.notify_fd},
            {"health_fd", state.health_fd},
            {"web_fd", state.web_fd},
            {"program_fd", state.program_fd},
            {"services", std::move(services)},
            {"children", state.children},
            {"fds", state.fds},
            {"exec",
             {{"binary", state.exec.binary},
              {"attempt", state.exec.attempt},
              {"from_version", state.exec.from_version},
              {"to_version", state.exec.to_version},
              {"at", state.exec.at}}}};
  if (state.child_fd_limit) j["child_fd_limit"] = {state.child_fd_limit->first, state.child_fd_limit->second};
  if (!state.resume_failed.empty()) j["resume_failed"] = state.resume_failed;
  return JsonText(j);
}

Status DecodeCarriedState(std::string_view text, CarriedState& state) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::InvalidArgument("the carried state is not a JSON object");
  Json fds = Json::array();
  if (Status s = FirstError({ReadField(j, "binary", state.binary), ReadField(j, "program_fd", state.program_fd),
                             ReadField(j, "fds", fds)});
      !s.ok())
    return s;
  if (!fds.is_array()) return Status::InvalidArgument("fds must be an array");
  for (const auto& fd : fds) {
    if (!fd.is_number_integer() || fd.get<int64_t>() < 0 || fd.get<int64_t>() > INT32_MAX)
      return Status::InvalidArgument("fds: " + fd.dump() + " is not a descriptor");
    state.fds.push_back(fd.get<int>());
  }
  if (Status s = ReadField(j, "format", state.format, true); !s.ok()) return s;
  if (state.format != kCarriedStateFormat)
    return Status::InvalidArgument("state format " + std::to_string(state.format) + " is not " +
                                   std::to_string(kCarriedStateFormat));
  Json config = Json::object(), services = Json::array(), exec = Json::object(), limit;
  if (Status s = FirstError(
          {ReadField(j, "version", state.version), ReadField(j, "config", config, true),
           ReadField(j, "started_wall", state.started_wall), ReadField(j, "orphans_reaped", state.orphans_reaped),
           ReadField(j, "notify_ignored", state.notify_ignored), ReadField(j, "announced_ready", state.announced_ready),
           ReadField(j, "self_upgrade", state.self_upgrade), ReadField(j, "control_fd", state.control_fd),
           ReadField(j, "notify_fd", state.notify_fd), ReadField(j, "health_fd", state.health_fd),
           ReadField(j, "web_fd", state.web_fd), ReadField(j, "services", services, true),
           ReadField(j, "children", state.children), ReadField(j, "exec", exec), ReadField(j, "child_fd_limit", limit),
           ReadField(j, "resume_failed", state.resume_failed)});
      !s.ok())
    return s;
  if (Status s = FirstError({In("config", ReadField(config, "path", state.config_path, true)),
                             In("config", ReadField(config, "text", state.config_text, true)),
                             In("exec", ReadExec(exec, state.exec))});
      !s.ok())
    return s;
  if (!services.is_array()) return Status::InvalidArgument("services must be an array");
  for (size_t i = 0; i < services.size(); ++i) {
    auto s = ReadService(services[i]);
    if (!s.ok()) return In("services[" + std::to_string(i) + "]", s.status());
    state.services.push_back(std::move(*s));
  }
  if (!limit.is_null()) {
    if (!limit.is_array() || limit.size() != 2 || !limit[0].is_number_unsigned() || !limit[1].is_number_unsigned())
      return Status::InvalidArgument("child_fd_limit must be [soft, hard]");
    state.child_fd_limit = {limit[0].get<uint64_t>(), limit[1].get<uint64_t>()};
  }
  return Status::Ok();
}

}  // namespace baton
