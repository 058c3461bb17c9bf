// [service.NAME]: the command, listeners, stop, restart, rollout, limits, hooks and the
// templates' placeholders (readiness, health and recycling: parse_health.cc).
#include <algorithm>
#include <functional>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "supervisor/base/duration.h"
#include "supervisor/base/number.h"
#include "supervisor/config/config_reader.h"
#include "supervisor/config/placeholders.h"

namespace baton {

Status ConfigReader::Listeners(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const {
  for (auto&& [k, v] : t) {
    std::string key = Join(prefix, k.str());
    ListenerConfig l;
    l.name = std::string(k.str());
    l.at.line = static_cast<int>(k.source().begin.line);
    std::string text;
    if (v.is_string()) {
      text = v.as_string()->get();
    } else if (const toml::table* lt = v.as_table()) {
      if (auto s = CheckKeys(*lt, key,
                             {"address", "backlog", "mode", "steering", "proxy_protocol", "max_connections",
                              "idle_timeout", "connect_timeout", "connect_retries"});
          !s.ok())
        return s;
      if (!lt->get("address")) return Error(v, key, "missing address");
      if (auto s = String(*lt, key, "address", text); !s.ok()) return s;
      if (auto s = Int(*lt, key, "backlog", l.backlog, 1, 1 << 20); !s.ok()) return s;
      if (auto s = ProxyOptions(*lt, key, l); !s.ok()) return s;
    } else {
      return Error(v, key, "expected an address string such as \"tcp://127.0.0.1:8080\"");
    }
    auto addr = ParseSocketAddress(text);
    if (!addr.ok()) return Error(v, key, addr.status().message());
    l.address = *addr;
    if (l.mode == ListenMode::kProxy && l.address.kind == SocketAddress::Kind::kUdp)
      return Error(*v.as_table()->get("mode"), key + ".mode", "proxy mode forwards streams: use tcp, tcp6 or unix");
    if (Status s = Steering(v.as_table(), key, l); !s.ok()) return s;
    l.at.column = static_cast<int>(k.source().begin.column);
    svc.listeners.push_back(std::move(l));
  }
  // toml++ iterates keys in sorted order; the fd order is the order in the file.
  std::sort(svc.listeners.begin(), svc.listeners.end(), [](const ListenerConfig& a, const ListenerConfig& b) {
    return std::tie(a.at.line, a.at.column) < std::tie(b.at.line, b.at.column);
  });
  return Status::Ok();
}

// steering = "kernel" (the default for tcp, tcp6 and udp) or "shared" (the only choice
// for unix and systemd:NAME: one socket that batond did not bind per generation).
Status ConfigReader::Steering(const toml::table* t, const std::string& key, ListenerConfig& l) const {
  if (l.mode == ListenMode::kProxy) {
    if (t && t->get("steering"))
      return Error(*t->get("steering"), key + ".steering", "applies only to inherited listeners, not mode = \"proxy\"");
    return Status::Ok();
  }
  bool steerable = l.address.is_inet();
  std::string steering = steerable ? "kernel" : "shared";
  if (t)
    if (auto s = String(*t, key, "steering", steering); !s.ok()) return s;
  if (steering != "kernel" && steering != "shared")
    return Error(*t->get("steering"), key + ".steering", "expected \"kernel\" or \"shared\"");
  if (steering == "kernel" && !steerable)
    return Error(*t->get("steering"), key + ".steering",
                 "kernel steering needs a tcp, tcp6 or udp address that batond binds itself");
  l.mode = steering == "kernel" ? ListenMode::kKernel : ListenMode::kShared;
  return Status::Ok();
}

Status ConfigReader::ProxyOptions(const toml::table& t, const std::string& key, ListenerConfig& l) const {
  std::string mode = "inherit";
  if (auto s = String(t, key, "mode", mode); !s.ok()) return s;
  if (mode == "proxy")
    l.mode = ListenMode::kProxy;
  else if (mode != "inherit")
    return Error(*t.get("mode"), key + ".mode", "expected \"inherit\" or \"proxy\"");
  for (const char* option : {"proxy_protocol", "max_connections", "idle_timeout", "connect_timeout", "connect_retries"})
    if (l.mode != ListenMode::kProxy && t.get(option))
      return Error(*t.get(option), key + "." + option, "applies only with mode = \"proxy\"");
  ProxyConfig& p = l.proxy;
  if (auto s = Bool(t, key, "proxy_protocol", p.proxy_protocol); !s.ok()) return s;
  if (auto s = Int(t, key, "max_connections", p.max_connections, 1, 1000000); !s.ok()) return s;
  if (auto s = Dur(t, key, "idle_timeout", p.idle_timeout); !s.ok()) return s;
  if (auto s = Dur(t, key, "connect_timeout", p.connect_timeout); !s.ok()) return s;
  if (auto s = Int(t, key, "connect_retries", p.connect_retries, 0, 100); !s.ok()) return s;
  if (p.idle_timeout.count() == 0)
    return Error(*t.get("idle_timeout"), key + ".idle_timeout", "must be greater than 0");
  if (p.connect_timeout.count() == 0)
    return Error(*t.get("connect_timeout"), key + ".connect_timeout", "must be greater than 0");
  return Status::Ok();
}

Status ConfigReader::Stop(const toml::table& t, const std::string& prefix, StopConfig& st) const {
  if (auto s = CheckKeys(t, prefix, {"signal", "signal_to", "timeout", "drain_timeout", "wait_for_connections"});
      !s.ok())
    return s;
  if (const toml::node* n = t.get("signal_to")) {
    std::string to = n->value_or(std::string());
    if (to != "group" && to != "main") return Error(*n, prefix + ".signal_to", "expected \"group\" or \"main\"");
    st.signal_group = to == "group";
  }
  if (auto s = Dur(t, prefix, "drain_timeout", st.drain_timeout); !s.ok()) return s;
  if (auto s = Bool(t, prefix, "wait_for_connections", st.wait_for_connections); !s.ok()) return s;
  std::string sig;
  if (auto s = String(t, prefix, "signal", sig); !s.ok()) return s;
  if (!sig.empty()) {
    st.signal = ParseSignal(sig);
    if (st.signal <= 0) return Error(*t.get("signal"), prefix + ".signal", "unknown signal '" + sig + "'");
  }
  return Dur(t, prefix, "timeout", st.timeout);
}

Status ConfigReader::Rollout(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const {
  RolloutConfig& r = svc.rollout;
  if (auto s = CheckKeys(t, prefix,
                         {"batch", "strategy", "steps", "step_time", "max_connect_failures", "max_resets",
                          "max_error_ratio", "check"});
      !s.ok())
    return s;
  if (auto s = Int(t, prefix, "batch", r.batch, 0, 1024); !s.ok()) return s;
  std::string strategy = "all";
  if (auto s = String(t, prefix, "strategy", strategy); !s.ok()) return s;
  if (strategy != "all" && strategy != "progressive")
    return Error(*t.get("strategy"), prefix + ".strategy", "expected \"all\" or \"progressive\"");
  r.progressive = strategy == "progressive";
  if (const toml::node* n = t.get("steps")) {
    const toml::array* arr = n->as_array();
    r.steps.clear();
    for (size_t i = 0; arr && i < arr->size(); ++i) {
      const toml::node& item = *arr->get(i);
      if (!item.is_integer()) break;
      r.steps.push_back(static_cast<int>(item.as_integer()->get()));
    }
    bool ok = arr && !r.steps.empty() && r.steps.size() == arr->size() && r.steps.back() == 100;
    for (size_t i = 0; ok && i < r.steps.size(); ++i)
      ok = r.steps[i] >= 1 && r.steps[i] <= 100 && (i == 0 || r.steps[i] > r.steps[i - 1]);
    if (!ok)
      return Error(*n, prefix + ".steps",
                   "expected increasing percentages from 1 to 100, ending at 100, e.g. [1, 10, 50, 100]");
  }
  if (auto s = Dur(t, prefix, "step_time", r.step_time); !s.ok()) return s;
  int failures = static_cast<int>(r.max_connect_failures), resets = static_cast<int>(r.max_resets);
  if (auto s = Int(t, prefix, "max_connect_failures", failures, 0, 1000000000); !s.ok()) return s;
  if (auto s = Int(t, prefix, "max_resets", resets, 0, 1000000000); !s.ok()) return s;
  r.max_connect_failures = failures;
  r.max_resets = resets;
  if (auto s = Float(t, prefix, "max_error_ratio", r.max_error_ratio, 0.0); !s.ok()) return s;
  if (const toml::node* n = t.get("check"))
    if (auto s = StringArray(*n, prefix + ".check", r.check, true); !s.ok()) return s;
  if (!r.progressive) return Status::Ok();
  if (r.batch > 0) return Error(t, prefix + ".batch", "a progressive rollout starts every replica at once: drop batch");
  for (const auto& l : svc.listeners) {
    if (l.mode == ListenMode::kShared)
      return Error(t, prefix + ".strategy",
                   "progressive needs every listener steered (the default for tcp, tcp6 and udp) or in proxy mode, "
                   "and listen." +
                       l.name +
                       " is shared: the kernel hands each connection to whichever process "
                       "accepts first, so batond cannot give the new generation a share");
    if (l.mode != ListenMode::kKernel) continue;
    // The kernel picks a socket per connection but never sees how it ends.
    for (const char* key : {"max_connect_failures", "max_resets", "max_error_ratio"})
      if (const toml::node* n = t.get(key))
        return Error(*n, prefix + "." + key,
                     "needs each connection's outcome, which only proxy mode sees; listen." + l.name +
                         " is steered by the kernel (use check, or mode = \"proxy\")");
  }
  if (svc.listeners.empty())
    return Error(t, prefix + ".strategy", "progressive needs a listener to split connections over");
  return Status::Ok();
}

Status ConfigReader::Limits(const toml::table& t, const std::string& prefix, LimitsConfig& l) const {
  if (auto s = CheckKeys(t, prefix, {"nofile", "nproc", "core"}); !s.ok()) return s;
  for (auto [key, out] : {std::pair{"nofile", &l.nofile}, {"nproc", &l.nproc}, {"core", &l.core}}) {
    const toml::node* n = t.get(key);
    if (!n) continue;
    if (n->is_integer() && n->as_integer()->get() >= 0)
      *out = static_cast<uint64_t>(n->as_integer()->get());
    else if (n->is_string() && n->as_string()->get() == "infinity")
      *out = LimitsConfig::kUnlimited;
    else
      return Error(*n, Join(prefix, key), "expected a non-negative integer or \"infinity\"");
  }
  return Status::Ok();
}

Status ConfigReader::Hooks(const toml::table& t, const std::string& prefix, HooksConfig& h) const {
  const std::pair<const char*, std::vector<std::string>*> hooks[] = {
      {"before_start", &h.before_start}, {"on_promoted", &h.on_promoted}, {"on_failed", &h.on_failed},
      {"on_rollback", &h.on_rollback},   {"on_fatal", &h.on_fatal},       {"before_drain", &h.before_drain}};
  std::set<std::string> keys = {"timeout"};
  for (const auto& [key, argv] : hooks) keys.insert(key);
  if (auto s = CheckKeys(t, prefix, keys); !s.ok()) return s;
  for (const auto& [key, argv] : hooks)
    if (const toml::node* n = t.get(key))
      if (auto s = StringArray(*n, Join(prefix, key), *argv, true); !s.ok()) return s;
  return Dur(t, prefix, "timeout", h.timeout);
}

Status ConfigReader::Restart(const toml::table& t, const std::string& prefix, RestartConfig& r) const {
  if (auto s = CheckKeys(t, prefix, {"backoff", "max_backoff", "multiplier", "max_failures", "reset_after"}); !s.ok())
    return s;
  if (auto s = Dur(t, prefix, "backoff", r.initial_backoff); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "max_backoff", r.max_backoff); !s.ok()) return s;
  if (auto s = Float(t, prefix, "multiplier", r.multiplier, 1.0); !s.ok()) return s;
  if (auto s = Int(t, prefix, "max_failures", r.max_failures, 1, 1000000); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "reset_after", r.reset_after); !s.ok()) return s;
  if (r.max_backoff < r.initial_backoff) r.max_backoff = r.initial_backoff;
  return Status::Ok();
}

Status ConfigReader::CheckTemplates(const toml::table& t, const std::string& prefix, const ServiceConfig& svc) const {
  TemplateVars vars;
  vars.service = svc.name;
  vars.version = svc.version;
  vars.probe_port = 1;
  int fd = 3;  // proxied listeners are not passed to workers: they have a backend port instead
  for (const auto& l : svc.listeners) {
    if (l.inherited()) vars.fds[l.name] = fd++;
    if (l.address.is_inet() || l.address.kind == SocketAddress::Kind::kSystemd || l.mode == ListenMode::kProxy)
      vars.ports[l.name] = 1;
  }
  auto check = [&](const std::string& text, const toml::node& where, const std::string& key) -> Status {
    auto r = ExpandTemplate(text, vars);
    return r.ok() ? Status::Ok() : Error(where, key, r.status().message());
  };
  const toml::node& cmd = *t.get("command");
  for (const auto& arg : svc.command)
    if (auto s = check(arg, cmd, prefix + ".command"); !s.ok()) return s;
  if (const toml::table* env = t.get_as<toml::table>("env"))
    for (auto&& [k, v] : *env)
      if (auto s = check(v.as_string()->get(), v, prefix + ".env." + std::string(k.str())); !s.ok()) return s;
  for (auto [table, exec] : {std::pair{"ready", &svc.ready.exec}, {"health", &svc.health.exec}}) {
    const toml::table* probes = t.get_as<toml::table>(table);
    if (!probes) continue;
    std::string key = prefix + "." + table;
    for (const char* target : {"http", "tcp"})
      if (const toml::node* n = probes->get(target); n && n->is_string())
        if (auto s = check(n->as_string()->get(), *n, key + "." + target); !s.ok()) return s;
    if (const toml::node* n = probes->get("exec"))
      for (const auto& arg : *exec)
        if (auto s = check(arg, *n, key + ".exec"); !s.ok()) return s;
  }
  return Status::Ok();
}

Status ConfigReader::Service(const std::string& name, const toml::node& node, ServiceConfig& svc) const {
  std::string prefix = "service." + name;
  const toml::table* t = node.as_table();
  if (!t) return Error(node, prefix, "expected a table");
  svc.name = name;
  svc.at.line = static_cast<int>(node.source().begin.line);
  if (name.empty() || name.size() > 64 ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos)
    return Error(node, prefix, "service names use letters, digits, '-' and '_' (at most 64)");
  static const std::set<std::string> kKeys = {
      "command", "version", "replicas",  "env",   "env_file", "after",        "hooks",
      "log",     "cwd",     "listen",    "ready", "health",   "recycle",      "stop",
      "restart", "rollout", "bake_time", "user",  "group",    "fd_store_max", "supplementary_groups",
      "umask",   "limits",  "pass_env"};
  if (auto s = CheckKeys(*t, prefix, kKeys); !s.ok()) return s;
  const toml::node* cmd = t->get("command");
  if (!cmd) return Error(node, prefix + ".command", "missing: every service needs a command (an argv array)");
  if (auto s = StringArray(*cmd, prefix + ".command", svc.command, true); !s.ok()) return s;
  if (auto s = String(*t, prefix, "version", svc.version); !s.ok()) return s;
  if (svc.version.empty()) svc.version = "initial";
  if (auto s = Int(*t, prefix, "replicas", svc.replicas, 1, 1024); !s.ok()) return s;
  if (auto s = String(*t, prefix, "cwd", svc.cwd); !s.ok()) return s;
  if (auto s = Dur(*t, prefix, "bake_time", svc.bake_time); !s.ok()) return s;
  if (auto s = Int(*t, prefix, "fd_store_max", svc.fd_store_max, 0, 128); !s.ok()) return s;
  if (const toml::node* after = t->get("after"))
    if (auto s = StringArray(*after, prefix + ".after", svc.after, false); !s.ok()) return s;
  for (auto read : {&ConfigReader::Account, &ConfigReader::ServiceEnv, &ConfigReader::SubTables})
    if (Status st = (this->*read)(*t, prefix, svc); !st.ok()) return st;
  return CheckTemplates(*t, prefix, svc);
}

// Who the workers run as: user, group, supplementary_groups, umask; and pass_env.
Status ConfigReader::Account(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const {
  if (auto s = String(t, prefix, "user", svc.user); !s.ok()) return s;
  if (auto s = String(t, prefix, "group", svc.group); !s.ok()) return s;
  for (auto [key, list] : {std::pair{"supplementary_groups", &svc.supplementary_groups}, {"pass_env", &svc.pass_env}})
    if (const toml::node* n = t.get(key))
      if (auto s = StringArray(*n, prefix + "." + key, *list, false); !s.ok()) return s;
  for (auto key : {"user", "group", "supplementary_groups"})
    if (auto s = AccountIds(t, prefix, key); !s.ok()) return s;
  if (const toml::node* n = t.get("umask")) {
    // 0o027 as a TOML integer, or "0027" as a string of octal digits.
    std::optional<long> mask;
    if (n->is_integer())
      mask = n->as_integer()->get();
    else if (n->is_string() && !n->as_string()->get().empty() &&
             n->as_string()->get().find_first_not_of("01234567") == std::string::npos)
      mask = std::stol(n->as_string()->get().substr(0, 6), nullptr, 8);
    if (!mask || *mask < 0 || *mask > 0777)
      return Error(*n, prefix + ".umask", "expected an octal mode such as \"0027\" or 0o027");
    svc.umask = static_cast<unsigned>(*mask);
  }
  return Status::Ok();
}

Status ConfigReader::ServiceEnv(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const {
  if (const toml::node* env = t.get("env")) {
    const toml::table* et = env->as_table();
    if (!et) return Error(*env, prefix + ".env", "expected a table of strings");
    for (auto&& [k, v] : *et) {
      if (!v.is_string()) return Error(v, prefix + ".env." + std::string(k.str()), "expected a string");
      svc.env[std::string(k.str())] = v.as_string()->get();
    }
  }
  if (const toml::node* files = t.get("env_file")) {
    const std::string key = prefix + ".env_file";
    if (files->is_string())
      svc.env_files.push_back(files->as_string()->get());
    else if (auto s = StringArray(*files, key, svc.env_files, false); !s.ok())
      return Error(*files, key, "expected a path or an array of paths");
    for (const auto& f : svc.env_files)
      if (f.empty() || f == "-") return Error(*files, key, "a path must not be empty");
  }
  return Status::Ok();
}

// The service's sub-tables, each read by its own reader, in this order.
Status ConfigReader::SubTables(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const {
  using Read = std::function<Status(const toml::table&, const std::string&)>;
  const std::pair<const char*, Read> tables[] = {
      {"listen", [&](const toml::table& sub, const std::string& key) { return Listeners(sub, key, svc); }},
      {"ready", [&](const toml::table& sub, const std::string& key) { return Ready(sub, key, svc.ready); }},
      {"health", [&](const toml::table& sub, const std::string& key) { return Health(sub, key, svc.health); }},
      {"recycle", [&](const toml::table& sub, const std::string& key) { return Recycle(sub, key, svc.recycle); }},
      {"stop", [&](const toml::table& sub, const std::string& key) { return Stop(sub, key, svc.stop); }},
      {"restart", [&](const toml::table& sub, const std::string& key) { return Restart(sub, key, svc.restart); }},
      {"limits", [&](const toml::table& sub, const std::string& key) { return Limits(sub, key, svc.limits); }},
      {"rollout", [&](const toml::table& sub, const std::string& key) { return Rollout(sub, key, svc); }},
      {"hooks", [&](const toml::table& sub, const std::string& key) { return Hooks(sub, key, svc.hooks); }},
      {"log",
       [&](const toml::table& sub, const std::string& key) {
         if (auto s = CheckKeys(sub, key, {"file", "max_size", "keep"}); !s.ok()) return s;
         return LogFile(sub, key, "file", "max_size", "keep", svc.log);
       }},
  };
  for (const auto& [key, read] : tables) {
    const toml::node* n = t.get(key);
    if (!n) continue;
    if (!n->is_table()) return Error(*n, prefix + "." + key, "expected a table");
    if (Status s = read(*n->as_table(), prefix + "." + key); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace baton
