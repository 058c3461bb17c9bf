// Supervisor start-up: a fresh start binds every listener; a resumed one (after a
// self-upgrade) takes over what the previous program carried. Both then open the notify
// and control sockets, add the services and create the tunnels. Nothing starts until Run.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "supervisor/base/file_safety.h"
#include "supervisor/base/log.h"
#include "supervisor/base/system_names.h"
#include "supervisor/control/web_access.h"
#include "supervisor/sockets/inherited_sockets.h"
#include "supervisor/supervisor.h"
#include "supervisor/tunnel/libssh.h"

namespace baton {

namespace {

// Many control clients and many listeners need more than the usual 1024 fds. Returns the
// limit batond started with, which workers get back (some servers still use select()).
rlimit RaiseFdLimit() {
  rlimit original{};
  ::getrlimit(RLIMIT_NOFILE, &original);
  rlimit raised = original;
  raised.rlim_cur = std::min<rlim_t>(original.rlim_max, 65536);
  if (raised.rlim_cur > original.rlim_cur) ::setrlimit(RLIMIT_NOFILE, &raised);
  return original;
}

Result<std::optional<unsigned>> ResolveGroup(const std::string& name) {
  if (name.empty()) return std::optional<unsigned>();
  auto gid = LookupGroup(name, "daemon.socket_group");
  if (!gid.ok()) return gid.status();
  return std::optional<unsigned>(*gid);
}

}  // namespace

std::unique_ptr<Supervisor> Supervisor::Create(Config config, CreateError* error) {
  std::unique_ptr<Supervisor> s(new Supervisor(std::move(config)));
  int code = kExitSystem;
  Status st = s->InitFresh(&code);
  if (!st.ok()) {
    if (error) *error = {st, code};
    return nullptr;
  }
  return s;
}

Result<std::vector<BoundListener>> Supervisor::BindListeners(const ServiceConfig& svc,
                                                             std::map<std::string, BoundListener>* reusable) {
  std::vector<BoundListener> out;
  for (const auto& l : svc.listeners) {
    // The same listener as before (even on port 0), or a fixed address bound elsewhere.
    std::string same = ReuseKey(svc.name, l.name, l.address);
    std::string key = l.address.port != 0 || !l.address.is_inet() ? l.address.ToString() : same;
    if (reusable && (reusable->count(same) || reusable->count(key))) {
      const std::string& k = reusable->count(same) ? same : key;
      BoundListener reused = std::move(reusable->at(k));
      reusable->erase(k);
      reused.name = l.name;
      out.push_back(std::move(reused));
      continue;
    }
    if (auto kept = ReclaimListener(svc.name, l, keeper_.get())) {
      out.push_back(std::move(*kept));
      continue;
    }
    auto bound = BindListener(l);
    if (!bound.ok())
      return Status::InvalidArgument(config_.path + ":" + std::to_string(l.at.line) + ": service." + svc.name +
                                     ".listen." + l.name + ": " + bound.status().message());
    spdlog::info("{}: listening on {} as '{}'", svc.name, bound->address.ToString(), l.name);
    out.push_back(std::move(*bound));
  }
  return out;
}

// What both start-ups share: batond as the subreaper of its workers' orphans, its state
// directory and history, and the control socket's group.
Result<std::optional<unsigned>> Supervisor::OpenState(int* exit_code) {
  started_wall_ = clock_->WallSeconds();
  systemd_ = SystemdNotifier::FromEnvironment();
  if (systemd_)
    keeper_ = SocketKeeper::FromEnvironment([n = systemd_.get()](const std::string& m, int fd) { n->Send(m, fd); });
  if (::getpid() != 1 && ::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    spdlog::warn("cannot become a child subreaper: {}", std::strerror(errno));
  const auto& d = config_.daemon;
  auto group = ResolveGroup(d.socket_group);
  if (!group.ok()) {
    *exit_code = kExitUsage;
    return Status::InvalidArgument(config_.path + ": " + group.status().message());
  }
  std::error_code ec;
  std::filesystem::create_directories(d.state_dir, ec);
  if (ec) return Status::FromErrno("create state_dir " + d.state_dir, ec.value());
  ::chmod(d.state_dir.c_str(), 0700);
  std::string warning;
  auto history = HistoryStore::Open(d.state_dir, &warning);
  if (!history.ok()) return history.status();
  if (!warning.empty()) spdlog::warn("{}", warning);
  history_ = std::move(*history);
  return group;
}

Status Supervisor::InitFresh(int* exit_code) {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  own_binary_ = n > 0 ? std::string(exe, static_cast<size_t>(n)) : "batond";
  launcher_.SetChildFdLimit(RaiseFdLimit());
  auto group = OpenState(exit_code);
  if (!group.ok()) return group.status();
  std::vector<std::vector<BoundListener>> bound;
  for (const auto& svc : config_.services) {
    auto listeners = BindListeners(svc, nullptr);
    if (!listeners.ok()) {
      *exit_code = kExitUsage;  // e.g. port in use: the config must change
      return listeners.status();
    }
    bound.push_back(std::move(*listeners));
  }
  std::string dir = std::filesystem::path(config_.daemon.control_socket).parent_path().string();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (Status safe = CheckPrivateDirectory(dir.empty() ? "." : dir, config_.path + ": daemon.control_socket");
      !safe.ok()) {
    *exit_code = kExitUsage;
    return safe;
  }
  if (Status s = OpenServices(std::move(bound), *group, {}); !s.ok()) return s;
  // Kept for a configuration that has changed since (a listener or service gone).
  for (auto& [name, fd] : TakeInheritedSockets("baton/")) {
    spdlog::info("{} from systemd's file descriptor store is no longer configured; closed", name);
    if (keeper_) keeper_->Forget(name);
  }
  KeepListeners();
  return CreateTunnels();
}

void Supervisor::KeepListeners() {
  if (!keeper_) return;
  std::map<std::string, int> listeners;
  for (const auto& slot : services_)
    for (const auto& l : slot->listeners)
      if (!l.from_systemd) listeners[SocketKeeper::ListenerName(slot->service->name(), l.name)] = l.fd.get();
  keeper_->KeepListeners(listeners);
}

Status Supervisor::InitResumed(int* exit_code) {
  const CarriedState& c = *carried_;
  IgnoreInheritedSockets();  // every socket is in the carried state
  rlimit fd_limit = RaiseFdLimit();
  if (c.child_fd_limit)  // the limit batond had before its first program raised it
    fd_limit = {static_cast<rlim_t>(c.child_fd_limit->first), static_cast<rlim_t>(c.child_fd_limit->second)};
  launcher_.SetChildFdLimit(fd_limit);
  auto group = OpenState(exit_code);
  if (!group.ok()) return group.status();
  auto bound = CarriedListeners();
  if (!bound.ok()) return bound.status();
  if (Status s = OpenServices(std::move(*bound), *group, {c.notify_fd, c.control_fd, c.health_fd, c.web_fd}); !s.ok())
    return s;
  started_wall_ = c.started_wall;
  orphans_reaped_ = c.orphans_reaped;
  notify_ignored_ = c.notify_ignored;
  announced_ready_ = c.announced_ready;
  if (c.self_upgrade.is_object()) self_upgrade_ = c.self_upgrade;
  // After a failed attempt the previous program runs again: its own file stays the default.
  own_binary_ = c.resume_failed.empty() ? c.exec.binary : c.binary;
  if (own_binary_.empty()) own_binary_ = "batond";
  if (Status s = launcher_.Import(c.children, c.children_watch_fd); !s.ok()) return s;
  KeepListeners();  // already kept by the previous program: systemd sees the same sockets
  return CreateTunnels();
}

// The notify, control and health sockets, then every service with its listeners.
Status Supervisor::OpenServices(std::vector<std::vector<BoundListener>> bound, std::optional<unsigned> socket_group,
                                DaemonSockets carried) {
  const auto& d = config_.daemon;
  auto notify = NotifyServer::Create(
      io_, d.state_dir + "/notify.sock", [this](int pid, const NotifyMessage& m) { OnNotify(pid, m); },
      carried.notify_fd);
  if (!notify.ok()) return notify.status();
  notify_ = std::move(*notify);
  OpenNotifySocketToWorkers();
  ControlAccess access{d.allow_uids, d.allow_gids, socket_group, d.control_timeout};
  auto control = ControlServer::Create(io_, d.control_socket, access, api_, carried.control_fd);
  if (!control.ok()) return control.status();
  control_ = std::move(*control);
  if (d.health) {
    auto health = HealthServer::Create(
        io_, *d.health, [this] { return Health(); }, carried.health_fd);
    if (!health.ok()) return health.status();
    health_ = std::move(*health);
  }
  if (Status s = OpenWeb(carried.web_fd); !s.ok()) return s;
  for (size_t i = 0; i < config_.services.size(); ++i)
    if (Status s = AddService(config_.services[i], std::move(bound[i])); !s.ok()) return s;
  return Status::Ok();
}

// The dashboard, with its token (made on first use) from the state directory.
Status Supervisor::OpenWeb(int carried_fd) {
  const auto& d = config_.daemon;
  if (!d.web) return Status::Ok();
  auto token = LoadOrCreateWebToken(d.state_dir);
  if (!token.ok()) return Status::FailedPrecondition("daemon.web: " + token.status().message());
  auto web = WebServer::Create(io_, {*d.web, *token, d.web_read_only, d.control_timeout}, api_, carried_fd);
  if (!web.ok()) return web.status();
  web_ = std::move(*web);
  return Status::Ok();
}

Status Supervisor::CreateTunnels() {
  if (config_.tunnels.empty()) return Status::Ok();
  if (Status s = LoadLibSsh(); !s.ok()) return s;
  for (const auto& t : config_.tunnels) {
    ServiceSlot* slot = Find(t.to_service);
    const BoundListener* target = nullptr;
    for (const auto& l : slot->listeners)
      if (l.name == t.to_listener) target = &l;
    if (!target) return Status::InvalidArgument("tunnel." + t.name + ".to: no such listener");
    auto tunnel = std::make_unique<TunnelSlot>(TunnelSlot{t, {}});
    TunnelSlot* raw = tunnel.get();
    for (size_t i = 0; i < t.edges.size(); ++i) {
      auto event = [this, raw, i](TunnelSession::Event what, const std::string& message) {
        // Sessions start one after another: the next once this one is up or has failed.
        if (i + 1 < raw->sessions.size() && what != TunnelSession::Event::kDown) raw->sessions[i + 1]->Start();
        EventType type = what == TunnelSession::Event::kUp     ? EventType::kTunnelUp
                         : what == TunnelSession::Event::kDown ? EventType::kTunnelDown
                                                               : EventType::kTunnelError;
        Publish(ServiceEvent{type, "tunnel:" + raw->config.name, 0, "", 0, message, clock_->WallSeconds()});
      };
      raw->sessions.push_back(std::make_unique<TunnelSession>(io_, raw->config, i, target->address, event));
    }
    tunnels_.push_back(std::move(tunnel));
  }
  return Status::Ok();
}

}  // namespace baton
