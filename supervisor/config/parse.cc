// TOML -> Config: [daemon], [tunnel.NAME], the checks across tables, and the entry points.
// Every error names FILE:LINE:COL and the dotted key (config_reader.h).
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "supervisor/base/duration.h"
#include "supervisor/base/number.h"
#include "supervisor/config/config_reader.h"
#include "supervisor/config/start_order.h"
#include "supervisor/config/placeholders.h"

namespace baton {

// tcp://HOST:PORT or tcp6://[HOST]:PORT, for batond's own HTTP endpoints.
Result<SocketAddress> ConfigReader::TcpAddress(const toml::node& n, const std::string& key) const {
  auto address = n.is_string() ? ParseSocketAddress(n.as_string()->get())
                               : Result<SocketAddress>(Status::InvalidArgument("expected a string"));
  if (address.ok() && address->kind != SocketAddress::Kind::kTcp && address->kind != SocketAddress::Kind::kTcp6)
    address = Status::InvalidArgument("expected tcp://HOST:PORT or tcp6://[HOST]:PORT");
  if (!address.ok()) return Error(n, key, address.status().message());
  return *address;
}

// web = "tcp://127.0.0.1:9181", or web = { address = "...", read_only = true }.
Status ConfigReader::Web(const toml::table& t, DaemonConfig& d) const {
  const toml::node* n = t.get("web");
  if (!n) return Status::Ok();
  const toml::node* address = n;
  if (const toml::table* table = n->as_table()) {
    if (auto s = CheckKeys(*table, "daemon.web", {"address", "read_only"}); !s.ok()) return s;
    address = table->get("address");
    if (!address) return Error(*n, "daemon.web", "needs an address, such as \"tcp://127.0.0.1:9181\"");
    if (auto s = Bool(*table, "daemon.web", "read_only", d.web_read_only); !s.ok()) return s;
  }
  auto parsed = TcpAddress(*address, n->is_table() ? "daemon.web.address" : "daemon.web");
  if (!parsed.ok()) return parsed.status();
  d.web = *parsed;
  return Status::Ok();
}

Status ConfigReader::Daemon(const toml::table& t, DaemonConfig& d) const {
  if (auto s = CheckKeys(t, "daemon",
                         {"control_socket", "state_dir", "log_level", "allow_uids", "allow_gids", "socket_group",
                          "control_timeout", "log_lines", "port_range", "steering_program", "udp_flow_idle", "health",
                          "web", "log_file", "log_max_size", "log_keep", "log_format"});
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
  if (const toml::node* n = t.get("health")) {
    auto address = TcpAddress(*n, "daemon.health");
    if (!address.ok()) return address.status();
    d.health = *address;
  }
  if (auto s = Web(t, d); !s.ok()) return s;
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
  if (auto s = LogFile(t, "daemon", "log_file", "log_max_size", "log_keep", d.log); !s.ok()) return s;
  if (const toml::node* n = t.get("log_format")) {
    std::string format = n->value_or(std::string());
    if (format != "text" && format != "json") return Error(*n, "daemon.log_format", "expected \"text\" or \"json\"");
    d.log_json = format == "json";
  }
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

Status ConfigReader::Tunnel(const std::string& name, const toml::node& node, TunnelConfig& t) const {
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
std::optional<std::pair<std::string, int>> ConfigReader::HostPort(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto p = ParseInteger<int>(port, "port", 0, 65535);
  if (!p.ok() || host.empty()) return std::nullopt;
  return std::make_pair(host, *p);
}

// `after` names services of this file, not the service itself, and makes no cycle.
Status ConfigReader::CheckStartOrder(const toml::table& root, const Config& cfg) const {
  auto after_node = [&](const std::string& service) -> const toml::node& {
    return *root.at_path("service." + service + ".after").node();
  };
  for (const auto& svc : cfg.services)
    for (const auto& dep : svc.after)
      if (dep == svc.name || !cfg.FindService(dep))
        return Error(
            after_node(svc.name), "service." + svc.name + ".after",
            dep == svc.name ? "a service cannot start after itself" : "no service '" + dep + "' in this configuration");
  if (auto cycle = FindStartCycle(cfg.services)) {
    std::string chain;
    for (const auto& name : *cycle) chain += (chain.empty() ? "" : " -> ") + name;
    return Error(after_node(cycle->front()), "service." + cycle->front() + ".after",
                 "the start order makes a cycle: " + chain);
  }
  return Status::Ok();
}

Status ConfigReader::Validate(const toml::table& root, Config& cfg) const {
  for (const auto& t : cfg.tunnels) {
    const ListenerConfig* target = nullptr;
    for (const auto& svc : cfg.services)
      if (svc.name == t.to_service)
        for (const auto& l : svc.listeners)
          if (l.name == t.to_listener) target = &l;
    std::string where = path_ + ":" + std::to_string(t.at.line) + ": tunnel." + t.name + ".to: ";
    if (!target)
      return Status::InvalidArgument(where + "no listener '" + t.to_listener + "' in a service '" + t.to_service + "'");
    if (target->address.kind == SocketAddress::Kind::kUdp)
      return Status::InvalidArgument(where + "a tunnel carries streams: the listener must be tcp, tcp6 or unix");
  }
  if (Status s = CheckStartOrder(root, cfg); !s.ok()) return s;
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
          cfg.warnings.push_back("service." + svc.name + ".ready: probe " + *probe + " targets the shared listener '" +
                                 l.name +
                                 "': any generation may answer it, so it cannot prove the new one is ready; use "
                                 "{probe_port} or notify");
    }
  }
  return Status::Ok();
}

Result<Config> ConfigReader::Parse(std::string_view text) const {
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

Result<Config> ParseConfig(std::string_view text, const std::string& path) { return ConfigReader(path).Parse(text); }

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
