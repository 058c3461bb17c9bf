// TOML -> Config. Every error names FILE:LINE:COL and the dotted key, and unknown keys are
// errors, so a typo never silently falls back to a default.
#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <tuple>
#include <set>
#include <sstream>

#include "supervisor/base/duration.h"
#include "supervisor/base/number.h"
#include "supervisor/config/config.h"
#include "supervisor/config/placeholders.h"

namespace baton {
namespace {

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  Status Error(const toml::source_region& where, const std::string& key, const std::string& msg) const {
    std::string loc = path_ + ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
    return Status::InvalidArgument(loc + ": " + key + ": " + msg);
  }
  Status Error(const toml::node& node, const std::string& key, const std::string& msg) const {
    return Error(node.source(), key, msg);
  }

  Status CheckKeys(const toml::table& table, const std::string& prefix, const std::set<std::string>& allowed) const {
    for (auto&& [k, v] : table) {
      if (!allowed.count(std::string(k.str()))) return Error(k.source(), Join(prefix, k.str()), "unknown key");
    }
    return Status::Ok();
  }

  static std::string Join(const std::string& prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
  }

  Status String(const toml::table& t, const std::string& prefix, std::string_view key, std::string& out) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    auto v = n->value<std::string>();
    if (!v || !n->is_string()) return Error(*n, Join(prefix, key), "expected a string");
    out = *v;
    return Status::Ok();
  }

  Status Int(const toml::table& t, const std::string& prefix, std::string_view key, int& out, long min,
             long max) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    if (!n->is_integer()) return Error(*n, Join(prefix, key), "expected an integer");
    long v = n->as_integer()->get();
    if (v < min || v > max)
      return Error(*n, Join(prefix, key), "must be between " + std::to_string(min) + " and " + std::to_string(max));
    out = static_cast<int>(v);
    return Status::Ok();
  }

  Status Bool(const toml::table& t, const std::string& prefix, std::string_view key, bool& out) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    if (!n->is_boolean()) return Error(*n, Join(prefix, key), "expected true or false");
    out = n->as_boolean()->get();
    return Status::Ok();
  }

  Status Float(const toml::table& t, const std::string& prefix, std::string_view key, double& out, double min) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    if (!n->is_number()) return Error(*n, Join(prefix, key), "expected a number");
    double v = n->is_integer() ? static_cast<double>(n->as_integer()->get()) : n->as_floating_point()->get();
    if (v < min) return Error(*n, Join(prefix, key), "must be at least " + std::to_string(min));
    out = v;
    return Status::Ok();
  }

  Status Dur(const toml::table& t, const std::string& prefix, std::string_view key, Duration& out) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    std::optional<Duration> d;
    if (n->is_string())
      d = ParseDuration(n->as_string()->get());
    else if (n->is_integer() && n->as_integer()->get() >= 0)
      d = Duration(n->as_integer()->get() * 1000);
    if (!d) return Error(*n, Join(prefix, key), "expected a duration such as \"500ms\", \"5s\" or \"2m\"");
    out = *d;
    return Status::Ok();
  }

  Status StringArray(const toml::node& n, const std::string& key, std::vector<std::string>& out, bool non_empty) const {
    const toml::array* arr = n.as_array();
    if (!arr) return Error(n, key, "expected an array of strings");
    out.clear();
    for (auto&& item : *arr) {
      if (!item.is_string()) return Error(item, key, "expected an array of strings");
      out.push_back(item.as_string()->get());
    }
    if (non_empty && (out.empty() || out[0].empty())) return Error(n, key, "must name a program to run");
    return Status::Ok();
  }

  // A user or group given by number must be a valid id: read unchecked, "4294967296" wrapped
  // to 0 and a worker ran as root.
  Status AccountIds(const toml::table& t, const std::string& prefix, std::string_view key) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    auto check = [&](const toml::node& item) {
      const std::string& name = item.as_string()->get();
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) return Status::Ok();
      auto id = ParseInteger<unsigned>(name, "id", 0, kMaxId);
      return id.ok() ? Status::Ok() : Error(item, Join(prefix, key), id.status().message());
    };
    if (const toml::array* arr = n->as_array()) {
      for (auto&& item : *arr)
        if (auto s = check(item); !s.ok()) return s;
      return Status::Ok();
    }
    return check(*n);
  }

  Status IdList(const toml::table& t, const std::string& key, std::vector<unsigned>& out) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    const toml::array* arr = n->as_array();
    if (!arr) return Error(*n, "daemon." + key, "expected an array of numeric ids");
    for (auto&& item : *arr) {
      if (!item.is_integer() || item.as_integer()->get() < 0 || item.as_integer()->get() > 4294967294)
        return Error(item, "daemon." + key, "expected an array of numeric ids");
      out.push_back(static_cast<unsigned>(item.as_integer()->get()));
    }
    return Status::Ok();
  }

  Status Daemon(const toml::table& t, DaemonConfig& d) const {
    if (auto s = CheckKeys(t, "daemon",
                           {"control_socket", "state_dir", "log_level", "allow_uids", "allow_gids", "socket_group",
                            "control_timeout", "log_lines", "port_range", "steering_program", "udp_flow_idle"});
        !s.ok())
      return s;
    if (auto s = IdList(t, "allow_uids", d.allow_uids); !s.ok()) return s;
    if (auto s = IdList(t, "allow_gids", d.allow_gids); !s.ok()) return s;
    if (auto s = String(t, "daemon", "socket_group", d.socket_group); !s.ok()) return s;
    if (auto s = AccountIds(t, "daemon", "socket_group"); !s.ok()) return s;
    if (const toml::node* n = t.get("port_range")) {
      auto range = n->is_string()
                       ? ParsePortRange(n->as_string()->get())
                       : Result<PortRange>(Status::InvalidArgument("expected a string such as \"20000-29999\""));
      if (!range.ok()) return Error(*n, "daemon.port_range", range.status().message());
      d.port_range = *range;
      d.port_range_at =
          path_ + ":" + std::to_string(n->source().begin.line) + ":" + std::to_string(n->source().begin.column);
    }
    if (auto s = Dur(t, "daemon", "control_timeout", d.control_timeout); !s.ok()) return s;
    if (auto s = Dur(t, "daemon", "udp_flow_idle", d.udp_flow_idle); !s.ok()) return s;
    if (const toml::node* n = t.get("steering_program")) {
      std::string program = n->value_or(std::string());
      if (program == "auto")
        d.steering_program = SteeringProgram::kAuto;
      else if (program == "ebpf")
        d.steering_program = SteeringProgram::kEbpf;
      else if (program == "cbpf")
        d.steering_program = SteeringProgram::kCbpf;
      else
        return Error(*n, "daemon.steering_program", "expected \"auto\", \"ebpf\" or \"cbpf\"");
    }
    int log_lines = static_cast<int>(d.log_lines);
    if (auto s = Int(t, "daemon", "log_lines", log_lines, 0, 1000000); !s.ok()) return s;
    d.log_lines = static_cast<size_t>(log_lines);
    if (auto s = String(t, "daemon", "control_socket", d.control_socket); !s.ok()) return s;
    if (auto s = String(t, "daemon", "state_dir", d.state_dir); !s.ok()) return s;
    if (auto s = String(t, "daemon", "log_level", d.log_level); !s.ok()) return s;
    static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
    if (!levels.count(d.log_level))
      return Error(*t.get("log_level"), "daemon.log_level", "expected one of trace, debug, info, warn, error");
    if (d.control_socket.empty() || d.control_socket[0] != '/' || d.control_socket.size() > 107) {
      const toml::node* n = t.get("control_socket");
      return n ? Error(*n, "daemon.control_socket", "must be an absolute path of at most 107 bytes")
               : Status::InvalidArgument(path_ + ": daemon.control_socket: must be an absolute path");
    }
    return Status::Ok();
  }

  Status Listeners(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const {
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
  Status Steering(const toml::table* t, const std::string& key, ListenerConfig& l) const {
    if (l.mode == ListenMode::kProxy) {
      if (t && t->get("steering"))
        return Error(*t->get("steering"), key + ".steering",
                     "applies only to inherited listeners, not mode = \"proxy\"");
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

  Status ProxyOptions(const toml::table& t, const std::string& key, ListenerConfig& l) const {
    std::string mode = "inherit";
    if (auto s = String(t, key, "mode", mode); !s.ok()) return s;
    if (mode == "proxy")
      l.mode = ListenMode::kProxy;
    else if (mode != "inherit")
      return Error(*t.get("mode"), key + ".mode", "expected \"inherit\" or \"proxy\"");
    for (const char* option :
         {"proxy_protocol", "max_connections", "idle_timeout", "connect_timeout", "connect_retries"})
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

  Status Ready(const toml::table& t, const std::string& prefix, ReadyConfig& r) const {
    if (auto s = CheckKeys(t, prefix,
                           {"notify", "http", "tcp", "exec", "timeout", "interval", "probe_timeout", "min_uptime"});
        !s.ok())
      return s;
    if (auto s = Bool(t, prefix, "notify", r.notify); !s.ok()) return s;
    if (const toml::node* n = t.get("http")) {
      std::string url;
      if (auto s = String(t, prefix, "http", url); !s.ok()) return s;
      if (url.rfind("http://", 0) != 0) return Error(*n, prefix + ".http", "expected an http:// URL");
      r.http = url;
    }
    if (const toml::node* n = t.get("tcp")) {
      if (n->is_boolean()) {
        if (n->as_boolean()->get()) r.tcp = "127.0.0.1:{probe_port}";
      } else if (n->is_string()) {
        r.tcp = n->as_string()->get();
        if (r.tcp->rfind(':') == std::string::npos) return Error(*n, prefix + ".tcp", "expected \"HOST:PORT\"");
      } else {
        return Error(*n, prefix + ".tcp", "expected true or \"HOST:PORT\"");
      }
    }
    if (const toml::node* n = t.get("exec")) {
      if (auto s = StringArray(*n, prefix + ".exec", r.exec, true); !s.ok()) return s;
    }
    if (auto s = Dur(t, prefix, "timeout", r.timeout); !s.ok()) return s;
    if (auto s = Dur(t, prefix, "interval", r.interval); !s.ok()) return s;
    if (auto s = Dur(t, prefix, "probe_timeout", r.probe_timeout); !s.ok()) return s;
    if (auto s = Dur(t, prefix, "min_uptime", r.min_uptime); !s.ok()) return s;
    if (r.interval < 10ms) return Error(*t.get("interval"), prefix + ".interval", "must be at least 10ms");
    if (r.timeout.count() == 0) return Error(*t.get("timeout"), prefix + ".timeout", "must be greater than 0");
    return Status::Ok();
  }

  Status Stop(const toml::table& t, const std::string& prefix, StopConfig& st) const {
    if (auto s = CheckKeys(t, prefix, {"signal", "timeout", "drain_timeout", "wait_for_connections"}); !s.ok())
      return s;
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

  Status Rollout(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const {
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
    if (r.batch > 0)
      return Error(t, prefix + ".batch", "a progressive rollout starts every replica at once: drop batch");
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

  Status Limits(const toml::table& t, const std::string& prefix, LimitsConfig& l) const {
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

  Status Restart(const toml::table& t, const std::string& prefix, RestartConfig& r) const {
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

  Status CheckTemplates(const toml::table& t, const std::string& prefix, const ServiceConfig& svc) const {
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
    if (const toml::table* ready = t.get_as<toml::table>("ready")) {
      for (const char* key : {"http", "tcp"})
        if (const toml::node* n = ready->get(key); n && n->is_string())
          if (auto s = check(n->as_string()->get(), *n, prefix + ".ready." + key); !s.ok()) return s;
      if (const toml::node* n = ready->get("exec"))
        for (const auto& arg : svc.ready.exec)
          if (auto s = check(arg, *n, prefix + ".ready.exec"); !s.ok()) return s;
    }
    return Status::Ok();
  }

  Status Service(const std::string& name, const toml::node& node, ServiceConfig& svc) const {
    std::string prefix = "service." + name;
    const toml::table* t = node.as_table();
    if (!t) return Error(node, prefix, "expected a table");
    svc.name = name;
    svc.at.line = static_cast<int>(node.source().begin.line);
    if (name.empty() || name.size() > 64 ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos)
      return Error(node, prefix, "service names use letters, digits, '-' and '_' (at most 64)");
    if (auto s = CheckKeys(
            *t, prefix,
            {"command", "version", "replicas", "env", "cwd", "listen", "ready", "stop", "restart", "rollout",
             "bake_time", "fd_store_max", "user", "group", "supplementary_groups", "umask", "limits", "pass_env"});
        !s.ok())
      return s;
    const toml::node* cmd = t->get("command");
    if (!cmd) return Error(node, prefix + ".command", "missing: every service needs a command (an argv array)");
    if (auto s = StringArray(*cmd, prefix + ".command", svc.command, true); !s.ok()) return s;
    if (auto s = String(*t, prefix, "version", svc.version); !s.ok()) return s;
    if (svc.version.empty()) svc.version = "initial";
    if (auto s = Int(*t, prefix, "replicas", svc.replicas, 1, 1024); !s.ok()) return s;
    if (auto s = String(*t, prefix, "cwd", svc.cwd); !s.ok()) return s;
    if (auto s = Dur(*t, prefix, "bake_time", svc.bake_time); !s.ok()) return s;
    if (auto s = Int(*t, prefix, "fd_store_max", svc.fd_store_max, 0, 128); !s.ok()) return s;
    if (auto s = String(*t, prefix, "user", svc.user); !s.ok()) return s;
    if (auto s = String(*t, prefix, "group", svc.group); !s.ok()) return s;
    for (auto [key, list] : {std::pair{"supplementary_groups", &svc.supplementary_groups}, {"pass_env", &svc.pass_env}})
      if (const toml::node* n = t->get(key))
        if (auto s = StringArray(*n, prefix + "." + key, *list, false); !s.ok()) return s;
    for (auto key : {"user", "group", "supplementary_groups"})
      if (auto s = AccountIds(*t, prefix, key); !s.ok()) return s;
    if (const toml::node* n = t->get("umask")) {
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
    if (const toml::node* env = t->get("env")) {
      const toml::table* et = env->as_table();
      if (!et) return Error(*env, prefix + ".env", "expected a table of strings");
      for (auto&& [k, v] : *et) {
        if (!v.is_string()) return Error(v, prefix + ".env." + std::string(k.str()), "expected a string");
        svc.env[std::string(k.str())] = v.as_string()->get();
      }
    }
    auto sub = [&](const char* key) -> Result<const toml::table*> {
      const toml::node* n = t->get(key);
      if (!n) return static_cast<const toml::table*>(nullptr);
      if (!n->is_table()) return Error(*n, prefix + "." + key, "expected a table");
      return n->as_table();
    };
    if (auto l = sub("listen"); !l.ok())
      return l.status();
    else if (*l) {
      if (auto s = Listeners(**l, prefix + ".listen", svc); !s.ok()) return s;
    }
    if (auto r = sub("ready"); !r.ok())
      return r.status();
    else if (*r) {
      if (auto s = Ready(**r, prefix + ".ready", svc.ready); !s.ok()) return s;
    }
    if (auto r = sub("stop"); !r.ok())
      return r.status();
    else if (*r) {
      if (auto s = Stop(**r, prefix + ".stop", svc.stop); !s.ok()) return s;
    }
    if (auto r = sub("restart"); !r.ok())
      return r.status();
    else if (*r) {
      if (auto s = Restart(**r, prefix + ".restart", svc.restart); !s.ok()) return s;
    }
    if (auto r = sub("limits"); !r.ok())
      return r.status();
    else if (*r) {
      if (auto s = Limits(**r, prefix + ".limits", svc.limits); !s.ok()) return s;
    }
    if (auto r = sub("rollout"); !r.ok())
      return r.status();
    else if (*r) {
      if (auto s = Rollout(**r, prefix + ".rollout", svc); !s.ok()) return s;
    }
    return CheckTemplates(*t, prefix, svc);
  }

  Status Tunnel(const std::string& name, const toml::node& node, TunnelConfig& t) const {
    std::string prefix = "tunnel." + name;
    const toml::table* tt = node.as_table();
    if (!tt) return Error(node, prefix, "expected a table");
    t.name = name;
    t.at.line = static_cast<int>(node.source().begin.line);
    if (auto s =
            CheckKeys(*tt, prefix,
                      {"edges", "user", "identity", "known_hosts", "remote_bind", "to", "keepalive", "keepalive_misses",
                       "backoff", "max_backoff", "healthy_after", "shutdown_grace", "proxy_protocol"});
        !s.ok())
      return s;
    for (const char* key : {"edges", "identity", "known_hosts", "remote_bind", "to"})
      if (!tt->get(key)) return Error(node, prefix + "." + key, "missing");
    std::vector<std::string> edges;
    if (auto s = StringArray(*tt->get("edges"), prefix + ".edges", edges, false); !s.ok()) return s;
    if (edges.empty()) return Error(*tt->get("edges"), prefix + ".edges", "name at least one edge as \"HOST:PORT\"");
    for (const auto& e : edges) {
      auto hp = HostPort(e);
      if (!hp) return Error(*tt->get("edges"), prefix + ".edges", "expected \"HOST:PORT\", got \"" + e + "\"");
      t.edges.push_back(*hp);
    }
    if (auto s = String(*tt, prefix, "user", t.user); !s.ok()) return s;
    if (auto s = String(*tt, prefix, "identity", t.identity); !s.ok()) return s;
    if (auto s = String(*tt, prefix, "known_hosts", t.known_hosts); !s.ok()) return s;
    std::string bind, to;
    if (auto s = String(*tt, prefix, "remote_bind", bind); !s.ok()) return s;
    auto hp = HostPort(bind);
    if (!hp || hp->second == 0)
      return Error(*tt->get("remote_bind"), prefix + ".remote_bind", "expected \"HOST:PORT\" with a port above 0");
    t.remote_host = hp->first;
    t.remote_port = hp->second;
    if (auto s = String(*tt, prefix, "to", to); !s.ok()) return s;
    auto dot = to.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == to.size())
      return Error(*tt->get("to"), prefix + ".to", "expected \"SERVICE.LISTENER\"");
    t.to_service = to.substr(0, dot);
    t.to_listener = to.substr(dot + 1);
    if (auto s = Dur(*tt, prefix, "keepalive", t.keepalive); !s.ok()) return s;
    if (auto s = Int(*tt, prefix, "keepalive_misses", t.keepalive_misses, 1, 100); !s.ok()) return s;
    if (auto s = Dur(*tt, prefix, "backoff", t.backoff); !s.ok()) return s;
    if (auto s = Dur(*tt, prefix, "max_backoff", t.max_backoff); !s.ok()) return s;
    if (auto s = Dur(*tt, prefix, "healthy_after", t.healthy_after); !s.ok()) return s;
    if (auto s = Dur(*tt, prefix, "shutdown_grace", t.shutdown_grace); !s.ok()) return s;
    if (auto s = Bool(*tt, prefix, "proxy_protocol", t.proxy_protocol); !s.ok()) return s;
    if (t.keepalive < 100ms) return Error(*tt->get("keepalive"), prefix + ".keepalive", "must be at least 100ms");
    if (t.backoff.count() == 0) return Error(*tt->get("backoff"), prefix + ".backoff", "must be greater than 0");
    if (t.max_backoff < t.backoff) t.max_backoff = t.backoff;
    return Status::Ok();
  }

  // "host:port" or "[v6]:port"; the port may be 0 (checked by the caller where it matters).
  static std::optional<std::pair<std::string, int>> HostPort(const std::string& text) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
    std::string host = text.substr(0, colon), port = text.substr(colon + 1);
    if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto p = ParseInteger<int>(port, "port", 0, 65535);
    if (!p.ok() || host.empty()) return std::nullopt;
    return std::make_pair(host, *p);
  }

  Status Validate(const toml::table& root, Config& cfg) const {
    for (const auto& t : cfg.tunnels) {
      const ListenerConfig* target = nullptr;
      for (const auto& svc : cfg.services)
        if (svc.name == t.to_service)
          for (const auto& l : svc.listeners)
            if (l.name == t.to_listener) target = &l;
      std::string where = path_ + ":" + std::to_string(t.at.line) + ": tunnel." + t.name + ".to: ";
      if (!target)
        return Status::InvalidArgument(where + "no listener '" + t.to_listener + "' in a service '" + t.to_service +
                                       "'");
      if (target->address.kind == SocketAddress::Kind::kUdp)
        return Status::InvalidArgument(where + "a tunnel carries streams: the listener must be tcp, tcp6 or unix");
    }
    // The same address twice (in one service or across services) cannot both be bound.
    std::map<std::string, std::string> seen;
    for (const auto& svc : cfg.services) {
      for (const auto& l : svc.listeners) {
        std::string addr = l.address.ToString();
        bool wildcard = l.address.port == 0 && l.address.is_inet();
        std::string key = "service." + svc.name + ".listen." + l.name;
        if (!wildcard && seen.count(addr))
          return Status::InvalidArgument(path_ + ":" + std::to_string(l.at.line) + ": " + key + ": address " + addr +
                                         " is already used by " + seen[addr]);
        seen[addr] = key;
      }
      // A probe sent to the shared listener is answered by whichever generation accepts it.
      for (const auto& probe : {svc.ready.http, svc.ready.tcp}) {
        if (!probe) continue;
        for (const auto& l : svc.listeners)
          if (l.address.is_inet() && l.address.port != 0 &&
              probe->find(":" + std::to_string(l.address.port)) != std::string::npos)
            cfg.warnings.push_back("service." + svc.name + ".ready: probe " + *probe +
                                   " targets the shared listener '" + l.name +
                                   "': any generation may answer it, so it cannot prove the new one is ready; use "
                                   "{probe_port} or notify");
      }
    }
    return Status::Ok();
  }

  Result<Config> Parse(std::string_view text) const {
    toml::table root;
    try {
      root = toml::parse(text, path_);
    } catch (const toml::parse_error& e) {
      return Error(e.source(), "syntax", std::string(e.description()));
    }
    Config cfg;
    cfg.path = path_;
    if (auto s = CheckKeys(root, "", {"daemon", "service", "tunnel"}); !s.ok()) return s;
    if (const toml::node* d = root.get("daemon")) {
      if (!d->is_table()) return Error(*d, "daemon", "expected a table");
      if (auto s = Daemon(*d->as_table(), cfg.daemon); !s.ok()) return s;
    }
    const toml::node* services = root.get("service");
    if (!services || !services->is_table() || services->as_table()->empty())
      return Status::InvalidArgument(path_ + ": service: no services defined (add a [service.NAME] table)");
    for (auto&& [name, node] : *services->as_table()) {
      ServiceConfig svc;
      if (auto s = Service(std::string(name.str()), node, svc); !s.ok()) return s;
      cfg.services.push_back(std::move(svc));
    }
    if (const toml::node* tunnels = root.get("tunnel")) {
      if (!tunnels->is_table()) return Error(*tunnels, "tunnel", "expected [tunnel.NAME] tables");
      for (auto&& [name, node] : *tunnels->as_table()) {
        TunnelConfig t;
        if (auto s = Tunnel(std::string(name.str()), node, t); !s.ok()) return s;
        cfg.tunnels.push_back(std::move(t));
      }
    }
    if (auto s = Validate(root, cfg); !s.ok()) return s;
    return cfg;
  }

 private:
  std::string path_;
};

}  // namespace

Result<Config> ParseConfig(std::string_view text, const std::string& path) { return Reader(path).Parse(text); }

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(path + ": unable to read config file: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  auto config = ParseConfig(ss.str(), path);
  if (!config.ok()) return config;
  config->text = ss.str();
  if (Status s = CheckPortRange(*config, ReadEphemeralRange()); !s.ok()) return s;
  return config;
}

Status CheckPortRange(Config& config, std::optional<PortRange> ephemeral) {
  const DaemonConfig& d = config.daemon;
  if (!ephemeral || !d.port_range.Overlaps(*ephemeral)) return Status::Ok();
  std::string why = d.port_range.ToString() + " overlaps the kernel's ephemeral ports " + ephemeral->ToString() +
                    " (net.ipv4.ip_local_port_range), which any outgoing connection may take";
  if (!d.port_range_at.empty())
    return Status::InvalidArgument(d.port_range_at + ": daemon.port_range: " + why + "; choose a range outside them");
  config.warnings.push_back("daemon.port_range: the default " + why + "; set port_range to a range outside them");
  return Status::Ok();
}

const char* ListenModeName(ListenMode mode) {
  switch (mode) {
    case ListenMode::kKernel: return "kernel";
    case ListenMode::kShared: return "shared";
    case ListenMode::kProxy: return "proxy";
  }
  return "?";
}

const char* SteeringProgramName(SteeringProgram p) {
  switch (p) {
    case SteeringProgram::kAuto: return "auto";
    case SteeringProgram::kEbpf: return "ebpf";
    case SteeringProgram::kCbpf: return "cbpf";
  }
  return "?";
}

int ParseSignal(std::string_view name) {
  static const std::map<std::string, int> kSignals = {{"HUP", SIGHUP},     {"INT", SIGINT},   {"QUIT", SIGQUIT},
                                                      {"KILL", SIGKILL},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
                                                      {"TERM", SIGTERM},   {"CONT", SIGCONT}, {"STOP", SIGSTOP},
                                                      {"WINCH", SIGWINCH}, {"ALRM", SIGALRM}, {"PWR", SIGPWR}};
  std::string n(name);
  if (n.rfind("SIG", 0) == 0) n = n.substr(3);
  if (auto it = kSignals.find(n); it != kSignals.end()) return it->second;
  auto v = ParseInteger<int>(n, "signal", 1, NSIG - 1);
  return v.ok() ? *v : -1;
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : std::to_string(sig);
}

}  // namespace baton
