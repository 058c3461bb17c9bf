#include "supervisor/handover/launch_spec.h"

#include <sys/resource.h>

#include <algorithm>

#include "supervisor/config/placeholders.h"
#include "supervisor/sockets/listener_set.h"

namespace baton {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The descriptors a worker gets (listeners from fd 3, then the FD store) with their names,
// and the template variables that name them.
void PlaceDescriptors(const WorkerInputs& in, LaunchSpec& spec, TemplateVars& vars, std::vector<std::string>& names) {
  for (size_t i = 0; i < in.listeners.size(); ++i) {
    const auto& l = in.listeners[i];
    vars.fds[l.name] = 3 + static_cast<int>(i);
    if (l.port) vars.ports[l.name] = l.port;
    names.push_back(l.name);
    // A kernel-steered listener: the generation's own socket, at the same fd number.
    auto own = in.own_sockets.find(l.name);
    spec.fds.push_back(own != in.own_sockets.end() ? own->second : l.fd);
  }
  for (const auto& [name, fd] : in.stored_fds) {
    names.push_back(name);
    spec.fds.push_back(fd);
  }
  // A proxied listener's {port:NAME} is the worker's own backend port.
  for (const auto& [name, port] : in.backend_ports) vars.ports[name] = port;
}

}  // namespace

std::string WorkerPath(const std::vector<std::pair<std::string, std::string>>& base_env) {
  for (const auto& [k, v] : base_env)
    if (k == "PATH") return v;
  return kDefaultPath;
}

namespace {

// A clean environment: PATH and the pass_env variables from batond's, then the config's
// env, env_file, the release's env, then batond's own; later entries win.
Result<std::map<std::string, std::string>> WorkerEnvironment(const WorkerInputs& in, const TemplateVars& vars,
                                                             const std::vector<std::string>& names) {
  const ServiceConfig& config = in.config;
  std::map<std::string, std::string> env{{"PATH", WorkerPath(in.base_env)}};
  for (const auto& [k, v] : in.base_env)
    if (std::find(config.pass_env.begin(), config.pass_env.end(), k) != config.pass_env.end()) env[k] = v;
  // `env`, then env_file (taken as written), then the release's own env.
  auto expand = [&](const std::map<std::string, std::string>& templates) -> Status {
    for (const auto& [k, v] : templates) {
      auto value = ExpandTemplate(v, vars);
      if (!value.ok()) return Status::InvalidArgument("env " + k + ": " + value.status().message());
      env[k] = *value;
    }
    return Status::Ok();
  };
  if (Status s = expand(config.env); !s.ok()) return s;
  for (const auto& [k, v] : in.file_env) env[k] = v;
  if (Status s = expand(in.release.env); !s.ok()) return s;
  for (auto& [k, v] : ListenerEnvironment(names)) env[k] = v;
  if (!in.notify_socket.empty()) env["NOTIFY_SOCKET"] = in.notify_socket;
  // As systemd 254 and later say it: the store takes this many descriptors (FDSTORE=1).
  if (!in.notify_socket.empty() && config.fd_store_max > 0) env["FDSTORE"] = std::to_string(config.fd_store_max);
  env["BATON_SERVICE"] = config.name;
  env["BATON_VERSION"] = in.release.version;
  if (in.probe_port) env["BATON_PROBE_PORT"] = std::to_string(*in.probe_port);
  // As systemd's WatchdogSec= does; WATCHDOG_PID is filled in with the worker's own pid.
  if (config.health.watchdog.count() > 0)
    env["WATCHDOG_USEC"] = std::to_string(std::chrono::microseconds(config.health.watchdog).count());
  for (const auto& l : config.listeners)  // PORT, as platforms that assign ports set it
    if (l.mode == ListenMode::kProxy && in.backend_ports.count(l.name)) {
      env["PORT"] = std::to_string(in.backend_ports.at(l.name));
      break;
    }
  return env;
}

// The probes of a [ready] or [health] table (`what`), their templates expanded; an exec
// probe runs with the worker's environment.
Status ExpandProbes(const char* what, const std::optional<std::string>& http, const std::optional<std::string>& tcp,
                    const std::vector<std::string>& exec, const TemplateVars& vars, const LaunchSpec& spec,
                    std::vector<Probe>& probes) {
  auto add = [&](Probe::Kind kind, const std::string& text) -> Status {
    auto target = ExpandTemplate(text, vars);
    if (!target.ok()) return Status::InvalidArgument(std::string(what) + " probe: " + target.status().message());
    probes.push_back(Probe{kind, *target, {}, {}});
    return Status::Ok();
  };
  if (http)
    if (Status s = add(Probe::Kind::kHttp, *http); !s.ok()) return s;
  if (tcp)
    if (Status s = add(Probe::Kind::kTcp, *tcp); !s.ok()) return s;
  if (!exec.empty()) {
    auto argv = ExpandAll(exec, vars);
    if (!argv.ok()) return Status::InvalidArgument(std::string(what) + ".exec: " + argv.status().message());
    probes.push_back(Probe{Probe::Kind::kExec, "", std::move(*argv), spec.env});
  }
  return Status::Ok();
}

Status ReadyProbes(const WorkerInputs& in, const TemplateVars& vars, const LaunchSpec& spec,
                   std::vector<Probe>& probes) {
  const ReadyConfig& r = in.config.ready;
  if (Status s = ExpandProbes("ready", r.http, r.tcp, r.exec, vars, spec, probes); !s.ok()) return s;
  // Proxy mode: the backend port must accept connections before any are routed to it.
  for (const auto& [name, port] : in.backend_ports)
    probes.push_back(Probe{Probe::Kind::kTcp, "127.0.0.1:" + std::to_string(port), {}, {}});
  return Status::Ok();
}

}  // namespace

Result<LaunchSpec> BuildLaunchSpec(const WorkerInputs& in, std::vector<Probe>* probes,
                                   std::vector<Probe>* health_probes) {
  const ServiceConfig& config = in.config;
  TemplateVars vars;
  vars.service = config.name;
  vars.version = in.release.version;
  vars.probe_port = in.probe_port;
  std::vector<std::string> names;
  LaunchSpec spec;
  PlaceDescriptors(in, spec, vars, names);
  auto argv = ExpandAll(in.release.command ? *in.release.command : config.command, vars);
  if (!argv.ok()) return argv.status();
  if (argv->empty() || (*argv)[0].empty()) return Status::InvalidArgument("command must name a program");
  spec.argv = std::move(*argv);
  spec.tag = config.name + " " + in.release.version;
  spec.cwd = config.cwd;
  if (!spec.fds.empty()) spec.own_pid_env.push_back("LISTEN_PID");
  if (config.health.watchdog.count() > 0) spec.own_pid_env.push_back("WATCHDOG_PID");
  spec.parent_death_signal = config.stop.signal;
  spec.user = config.user;
  spec.group = config.group;
  spec.supplementary_groups = config.supplementary_groups;
  spec.umask = config.umask;
  for (auto [resource, value] : {std::pair{RLIMIT_NOFILE, config.limits.nofile},
                                 {RLIMIT_NPROC, config.limits.nproc},
                                 {RLIMIT_CORE, config.limits.core}})
    if (value) spec.limits.emplace_back(resource, *value);
  auto env = WorkerEnvironment(in, vars, names);
  if (!env.ok()) return env.status();
  spec.env.assign(env->begin(), env->end());
  if (probes)
    if (Status s = ReadyProbes(in, vars, spec, *probes); !s.ok()) return s;
  const HealthConfig& h = config.health;
  if (health_probes)
    if (Status s = ExpandProbes("health", h.http, h.tcp, h.exec, vars, spec, *health_probes); !s.ok()) return s;
  return spec;
}

bool NeedsProbePort(const ServiceConfig& c, const Release& r) {
  auto any = [](const std::vector<std::string>& v) {
    for (const auto& s : v)
      if (UsesProbePort(s)) return true;
    return false;
  };
  if (any(r.command ? *r.command : c.command) || any(c.ready.exec) || any(c.health.exec)) return true;
  for (const auto* target : {&c.ready.http, &c.ready.tcp, &c.health.http, &c.health.tcp})
    if (*target && UsesProbePort(**target)) return true;
  for (const auto& [k, v] : c.env)
    if (UsesProbePort(v)) return true;
  for (const auto& [k, v] : r.env)
    if (UsesProbePort(v)) return true;
  return false;
}

}  // namespace baton
