#include "supervisor/upgrade/carried_state.h"

#include <boost/json.hpp>

#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include "supervisor/base/json_fields.h"  // FirstError
#include "supervisor/base/json_writer.h"

namespace baton {

namespace {

namespace bj = boost::json;
using Json = nlohmann::json;

// The first failed read, with where it was: "services[1].listeners[0]: field 'fd' ...".
Status In(const std::string& where, Status s) {
  return s.ok() ? s : Status::InvalidArgument(where + ": " + s.message());
}

std::string Indexed(const char* name, size_t i) { return std::string(name) + "[" + std::to_string(i) + "]"; }

// The same tree as nlohmann::json::parse gives for the same text (a number that is not
// negative is unsigned there), for the sub-documents modules read.
Json ToNlohmann(const bj::value& v) {
  switch (v.kind()) {
    case bj::kind::null: return nullptr;
    case bj::kind::bool_: return v.get_bool();
    case bj::kind::int64: return v.get_int64() >= 0 ? Json(static_cast<uint64_t>(v.get_int64())) : Json(v.get_int64());
    case bj::kind::uint64: return v.get_uint64();
    case bj::kind::double_: return v.get_double();
    case bj::kind::string: return std::string(v.get_string());
    case bj::kind::array: {
      Json out = Json::array();
      for (const auto& e : v.get_array()) out.push_back(ToNlohmann(e));
      return out;
    }
    case bj::kind::object: {
      Json out = Json::object();
      for (const auto& [key, e] : v.get_object()) out[std::string(key)] = ToNlohmann(e);
      return out;
    }
  }
  return nullptr;
}

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

// Reads `v` into `out`; what `v` must be when it cannot, else nullptr. Integers are
// range-checked by the type they are read into, as ReadField (json_fields.h) does.
template <typename T>
const char* Get(const bj::value& v, T& out) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return "a string";
    out = std::string(v.get_string());
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_bool()) return "true or false";
    out = v.get_bool();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_int64() && !v.is_uint64()) return "an integer";
    bool fits = v.is_uint64() ? v.get_uint64() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                              : std::in_range<T>(v.get_int64());
    if (!fits) return "an integer in range";
    out = v.is_uint64() ? static_cast<T>(v.get_uint64()) : static_cast<T>(v.get_int64());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number() || !std::isfinite(v.to_number<double>())) return "a number";  // 1e999 parses as infinity
    out = static_cast<T>(v.to_number<double>());
  } else if constexpr (IsOptional<T>::value) {
    typename T::value_type value{};
    if (const char* what = Get(v, value)) return what;
    out = value;
  } else if constexpr (std::is_same_v<T, Json>) {
    out = ToNlohmann(v);  // a sub-document its owner reads
  } else if constexpr (std::is_same_v<T, const bj::object*>) {
    if (!v.is_object()) return "an object";
    out = &v.get_object();
  } else {
    static_assert(std::is_same_v<T, const bj::array*>);
    if (!v.is_array()) return "an array";
    out = &v.get_array();
  }
  return nullptr;
}

// Reads `o[key]` into `out` when present and not null; `out` keeps its value otherwise,
// or the read fails when `required`. One lookup: with 1,000 workers there are tens of
// thousands.
template <typename T>
Status Read(const bj::object& o, const char* key, T& out, bool required = false) {
  const bj::value* v = o.if_contains(key);
  if (!v || v->is_null())
    return required ? Status::InvalidArgument(std::string("field '") + key + "' is required") : Status::Ok();
  if (const char* what = Get(*v, out))
    return Status::InvalidArgument(std::string("field '") + key + "' must be " + what);
  return Status::Ok();
}

// Each element of the array `o[key]` (if any) read by `read`, which names its errors.
template <typename T, typename ReadOne>
Status ReadEach(const bj::object& o, const char* key, std::vector<T>& out, ReadOne read) {
  const bj::array* a = nullptr;
  if (Status s = Read(o, key, a); !s.ok() || !a) return s;
  out.reserve(a->size());
  for (size_t i = 0; i < a->size(); ++i) {
    T item;
    if (Status s = read((*a)[i], item); !s.ok()) return In(Indexed(key, i), s);
    out.push_back(std::move(item));
  }
  return Status::Ok();
}

const bj::object& AsObject(const bj::value& v) {
  static const bj::object kEmpty;
  return v.is_object() ? v.get_object() : kEmpty;
}

Status ReadListener(const bj::value& v, CarriedListener& l) {
  const bj::object& o = AsObject(v);
  return FirstError({Read(o, "name", l.name, true), Read(o, "address", l.address, true), Read(o, "fd", l.fd, true),
                     Read(o, "from_systemd", l.from_systemd)});
}

Status ReadWorker(const bj::value& v, CarriedWorker& w) {
  const bj::object& o = AsObject(v);
  const bj::object* ports = nullptr;
  const bj::array* tail = nullptr;
  if (Status s = FirstError({Read(o, "id", w.id, true), Read(o, "pid", w.pid, true), Read(o, "phase", w.phase, true),
                             Read(o, "started_wall", w.started_wall, true), Read(o, "restarts", w.restarts),
                             Read(o, "quick_failures", w.quick_failures), Read(o, "notify_status", w.notify_status),
                             Read(o, "backend_ports", ports), Read(o, "stderr_tail", tail),
                             Read(o, "probe_port", w.probe_port), Read(o, "restart_in_ms", w.restart_in_ms)});
      !s.ok())
    return s;
  if (w.id < 0 || w.id == std::numeric_limits<int>::max())  // the next worker's id is one more
    return Status::InvalidArgument("field 'id' must be an integer in range");
  if (ports)
    for (const auto& [name, port] : *ports)
      if (const char* what = Get(port, w.backend_ports[std::string(name)]))
        return Status::InvalidArgument("backend_ports: '" + std::string(name) + "' must be " + what);
  if (tail)
    for (const auto& line : *tail)
      if (const char* what = Get(line, w.stderr_tail.emplace_back()))
        return Status::InvalidArgument(std::string("stderr_tail: each line must be ") + what);
  return Status::Ok();
}

Status ReadLogLine(const bj::value& v, LogLine& l) {
  const bj::object& o = AsObject(v);
  std::string stream;
  Status s = FirstError({Read(o, "time", l.time, true), Read(o, "version", l.version, true),
                         Read(o, "generation", l.generation, true), Read(o, "pid", l.pid, true),
                         Read(o, "stream", stream, true), Read(o, "line", l.text, true)});
  l.stderr_stream = stream == "stderr";
  return s;
}

Status ReadChild(const bj::value& v, CarriedChild& c) {
  const bj::object& o = AsObject(v);
  return FirstError({Read(o, "pid", c.pid, true), Read(o, "pidfd", c.pidfd, true), Read(o, "stdout", c.stdout_fd, true),
                     Read(o, "stderr", c.stderr_fd, true), Read(o, "stdout_partial", c.stdout_partial),
                     Read(o, "stderr_partial", c.stderr_partial), Read(o, "tag", c.tag, true)});
}

// The service's sub-document but its live generation's workers, which are read typed.
Status ReadServiceSnapshot(const bj::object& o, ServiceSnapshot& snapshot) {
  snapshot.fields = Json::object();
  for (const auto& [key, value] : o) {
    if (key != "live" || !value.is_object()) {
      snapshot.fields[std::string(key)] = ToNlohmann(value);
      continue;
    }
    Json& live = snapshot.fields["live"] = Json::object();
    for (const auto& [live_key, live_value] : value.get_object())
      if (live_key != "workers") live[std::string(live_key)] = ToNlohmann(live_value);
    if (Status s = In("live", ReadEach(value.get_object(), "workers", snapshot.workers, ReadWorker)); !s.ok()) return s;
  }
  return Status::Ok();
}

Status ReadService(const bj::value& v, CarriedService& s) {
  const bj::object& o = AsObject(v);
  const bj::object *service = nullptr, *proxies = nullptr;
  if (Status st =
          FirstError({Read(o, "name", s.name, true), ReadEach(o, "listeners", s.listeners, ReadListener),
                      Read(o, "service", service, true), Read(o, "proxies", proxies), Read(o, "steering", s.steering)});
      !st.ok())
    return st;
  if (Status st = In("service", ReadServiceSnapshot(*service, s.service)); !st.ok()) return st;
  if (proxies)
    for (const auto& [name, proxy] : *proxies) s.proxies[std::string(name)] = ToNlohmann(proxy);
  // The log lines are a courtesy: a malformed one ends them, nothing else.
  if (const bj::array* logs = nullptr; Read(o, "logs", logs).ok() && logs)
    for (const auto& line : *logs)
      if (!ReadLogLine(line, s.logs.emplace_back()).ok()) {
        s.logs.pop_back();
        break;
      }
  return Status::Ok();
}

Status ReadExec(const bj::object& o, CarriedExec& e) {
  return FirstError({Read(o, "binary", e.binary), Read(o, "attempt", e.attempt),
                     Read(o, "from_version", e.from_version), Read(o, "to_version", e.to_version),
                     Read(o, "at", e.at)});
}

void WriteWorker(JsonWriter& out, const CarriedWorker& w) {
  out.BeginObject().Key("id").Int(w.id).Key("pid").Int(w.pid).Key("phase").String(w.phase);
  out.Key("started_wall").Double(w.started_wall).Key("restarts").Int(w.restarts);
  out.Key("quick_failures").Int(w.quick_failures).Key("notify_status").String(w.notify_status);
  out.Key("backend_ports").BeginObject();
  for (const auto& [name, port] : w.backend_ports) out.Key(name).Int(port);
  out.EndObject().Key("stderr_tail").BeginArray();
  for (const auto& line : w.stderr_tail) out.String(line);
  out.EndArray();
  if (w.probe_port) out.Key("probe_port").Int(*w.probe_port);
  if (w.restart_in_ms) out.Key("restart_in_ms").Int(*w.restart_in_ms);
  out.EndObject();
}

// Snapshot's fields, with the workers back in the live generation.
void WriteServiceSnapshot(JsonWriter& out, const ServiceSnapshot& snapshot) {
  out.BeginObject();
  for (const auto& [key, value] : snapshot.fields.items()) {
    if (key != "live" || !value.is_object()) {
      out.Key(key).Value(value);
      continue;
    }
    out.Key("live").BeginObject().Members(value).Key("workers").BeginArray();
    for (const auto& w : snapshot.workers) WriteWorker(out, w);
    out.EndArray().EndObject();
  }
  out.EndObject();
}

void WriteService(JsonWriter& out, const CarriedService& s) {
  out.BeginObject().Key("name").String(s.name).Key("listeners").BeginArray();
  for (const auto& l : s.listeners) {
    out.BeginObject().Key("name").String(l.name).Key("address").String(l.address);
    out.Key("fd").Int(l.fd).Key("from_systemd").Bool(l.from_systemd).EndObject();
  }
  out.EndArray().Key("service");
  WriteServiceSnapshot(out, s.service);
  out.Key("proxies").BeginObject();
  for (const auto& [name, proxy] : s.proxies) out.Key(name).Value(proxy);
  out.EndObject().Key("steering").Value(s.steering).Key("logs").BeginArray();
  for (const auto& line : s.logs) {
    out.BeginObject().Key("time").Double(line.time).Key("service").String(s.name);
    out.Key("version").String(line.version).Key("generation").Int(line.generation).Key("pid").Int(line.pid);
    out.Key("stream").String(line.stderr_stream ? "stderr" : "stdout").Key("line").String(line.text).EndObject();
  }
  out.EndArray().EndObject();
}

void WriteChild(JsonWriter& out, const CarriedChild& c) {
  out.BeginObject().Key("pid").Int(c.pid).Key("pidfd").Int(c.pidfd).Key("stdout").Int(c.stdout_fd);
  out.Key("stderr").Int(c.stderr_fd).Key("stdout_partial").String(c.stdout_partial);
  out.Key("stderr_partial").String(c.stderr_partial).Key("tag").String(c.tag).EndObject();
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
  out.Reserve(4096 + 512 * state.children.size());
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
  out.EndArray().Key("children").BeginArray();
  for (const auto& c : state.children) WriteChild(out, c);
  out.EndArray().Key("children_watch_fd").Int(state.children_watch_fd);
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
  bj::monotonic_resource arena;  // the whole tree goes at once, when the state is read
  boost::system::error_code error;
  bj::value parsed = bj::parse(bj::string_view(text.data(), text.size()), error, &arena);
  if (error || !parsed.is_object()) return Status::InvalidArgument("the carried state is not a JSON object");
  const bj::object& j = parsed.get_object();
  const bj::array* fds = nullptr;
  if (Status s =
          FirstError({Read(j, "binary", state.binary), Read(j, "program_fd", state.program_fd), Read(j, "fds", fds)});
      !s.ok())
    return s;
  if (fds)
    for (const auto& fd : *fds) {
      int n = -1;
      if (Get(fd, n) || n < 0) return Status::InvalidArgument("fds: " + bj::serialize(fd) + " is not a descriptor");
      state.fds.push_back(n);
    }
  if (Status s = Read(j, "format", state.format, true); !s.ok()) return s;
  if (state.format != kCarriedStateFormat)
    return Status::InvalidArgument("state format " + std::to_string(state.format) + " is not " +
                                   std::to_string(kCarriedStateFormat));
  const bj::object *config = nullptr, *exec = nullptr;
  const bj::array *services = nullptr, *limit = nullptr;
  if (Status s = FirstError(
          {Read(j, "version", state.version), Read(j, "config", config, true),
           Read(j, "started_wall", state.started_wall), Read(j, "orphans_reaped", state.orphans_reaped),
           Read(j, "notify_ignored", state.notify_ignored), Read(j, "announced_ready", state.announced_ready),
           Read(j, "self_upgrade", state.self_upgrade), Read(j, "control_fd", state.control_fd),
           Read(j, "notify_fd", state.notify_fd), Read(j, "health_fd", state.health_fd),
           Read(j, "web_fd", state.web_fd), Read(j, "services", services, true),
           ReadEach(j, "children", state.children, ReadChild), Read(j, "children_watch_fd", state.children_watch_fd),
           Read(j, "exec", exec), Read(j, "child_fd_limit", limit), Read(j, "resume_failed", state.resume_failed)});
      !s.ok())
    return s;
  if (Status s = FirstError({In("config", Read(*config, "path", state.config_path, true)),
                             In("config", Read(*config, "text", state.config_text, true)),
                             exec ? In("exec", ReadExec(*exec, state.exec)) : Status::Ok()});
      !s.ok())
    return s;
  for (size_t i = 0; i < services->size(); ++i)
    if (Status s = In(Indexed("services", i), ReadService((*services)[i], state.services.emplace_back())); !s.ok())
      return s;
  if (limit) {
    std::pair<uint64_t, uint64_t> soft_hard;
    if (limit->size() != 2 || Get((*limit)[0], soft_hard.first) || Get((*limit)[1], soft_hard.second))
      return Status::InvalidArgument("child_fd_limit must be [soft, hard]");
    state.child_fd_limit = soft_hard;
  }
  return Status::Ok();
}

}  // namespace baton
