#include "supervisor/upgrade/carried_state.h"

#include "supervisor/base/json_fields.h"
#include "supervisor/base/json_text.h"
#include "supervisor/base/json_writer.h"

namespace baton {

namespace {

using Json = nlohmann::json;

// The first failed read, with where it was: "services[1].listeners[0]: field 'fd' ...".
Status In(const std::string& where, Status s) {
  return s.ok() ? s : Status::InvalidArgument(where + ": " + s.message());
}

Result<CarriedListener> ReadListener(const Json& j) {
  CarriedListener l;
  if (Status s = FirstError({ReadField(j, "name", l.name, true), ReadField(j, "address", l.address, true),
                             ReadField(j, "fd", l.fd, true), ReadField(j, "from_systemd", l.from_systemd)});
      !s.ok())
    return s;
  return l;
}

void WriteService(JsonWriter& out, const CarriedService& s) {
  out.BeginObject().Key("name").String(s.name).Key("listeners").BeginArray();
  for (const auto& l : s.listeners) {
    out.BeginObject().Key("name").String(l.name).Key("address").String(l.address);
    out.Key("fd").Int(l.fd).Key("from_systemd").Bool(l.from_systemd).EndObject();
  }
  out.EndArray().Key("service").Value(s.service).Key("proxies").BeginObject();
  for (const auto& [name, proxy] : s.proxies) out.Key(name).Value(proxy);
  out.EndObject().Key("steering").Value(s.steering).Key("logs").BeginArray();
  for (const auto& line : s.logs) out.Value(line);
  out.EndArray().EndObject();
}

// Moves the sub-documents out of `j`: a state is read once.
Result<CarriedService> ReadService(Json& j) {
  CarriedService s;
  Json listeners = Json::array(), proxies = Json::object(), logs = Json::array();
  if (Status st = FirstError({ReadField(j, "name", s.name, true), TakeField(j, "listeners", listeners),
                              TakeField(j, "service", s.service, true), TakeField(j, "proxies", proxies),
                              TakeField(j, "steering", s.steering), TakeField(j, "logs", logs)});
      !st.ok())
    return st;
  if (!listeners.is_array() || !proxies.is_object() || !logs.is_array())
    return Status::InvalidArgument("listeners and logs must be arrays, proxies an object");
  for (size_t i = 0; i < listeners.size(); ++i) {
    auto l = ReadListener(listeners[i]);
    if (!l.ok()) return In("listeners[" + std::to_string(i) + "]", l.status());
    s.listeners.push_back(std::move(*l));
  }
  for (auto& [name, proxy] : proxies.items()) s.proxies[name] = std::move(proxy);
  s.logs.assign(std::make_move_iterator(logs.begin()), std::make_move_iterator(logs.end()));
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

// Written straight to text: with 1,000 workers, building one document of the whole state
// first copied every sub-document (half a megabyte) for nothing.
std::string EncodeCarriedState(const CarriedState& state) {
  JsonWriter out;
  out.BeginObject().Key("format").Int(state.format).Key("version").String(state.version);
  out.Key("binary").String(state.binary);
  out.Key("config").BeginObject().Key("path").String(state.config_path);
  out.Key("text").String(state.config_text).EndObject();
  out.Key("started_wall").Double(state.started_wall).Key("orphans_reaped").Uint(state.orphans_reaped);
  out.Key("notify_ignored").Uint(state.notify_ignored).Key("announced_ready").Bool(state.announced_ready);
  out.Key("self_upgrade").Value(state.self_upgrade);
  out.Key("control_fd").Int(state.control_fd).Key("notify_fd").Int(state.notify_fd);
  out.Key("health_fd").Int(state.health_fd).Key("web_fd").Int(state.web_fd);
  out.Key("program_fd").Int(state.program_fd).Key("services").BeginArray();
  for (const auto& s : state.services) WriteService(out, s);
  out.EndArray().Key("children").Value(state.children).Key("children_watch_fd").Int(state.children_watch_fd);
  out.Key("fds").BeginArray();
  for (int fd : state.fds) out.Int(fd);
  out.EndArray().Key("exec").BeginObject().Key("binary").String(state.exec.binary);
  out.Key("attempt").Int(state.exec.attempt).Key("from_version").String(state.exec.from_version);
  out.Key("to_version").String(state.exec.to_version).Key("at").Double(state.exec.at).EndObject();
  if (state.child_fd_limit) {
    out.Key("child_fd_limit").BeginArray().Uint(state.child_fd_limit->first);
    out.Uint(state.child_fd_limit->second).EndArray();
  }
  if (!state.resume_failed.empty()) out.Key("resume_failed").String(state.resume_failed);
  out.EndObject();
  return out.Take();
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
           TakeField(j, "self_upgrade", state.self_upgrade), ReadField(j, "control_fd", state.control_fd),
           ReadField(j, "notify_fd", state.notify_fd), ReadField(j, "health_fd", state.health_fd),
           ReadField(j, "web_fd", state.web_fd), TakeField(j, "services", services, true),
           TakeField(j, "children", state.children), ReadField(j, "children_watch_fd", state.children_watch_fd),
           ReadField(j, "exec", exec), ReadField(j, "child_fd_limit", limit),
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
