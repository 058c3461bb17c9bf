#include "supervisor/supervisor.h"

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "supervisor/base/log.h"

extern char** environ;

namespace baton {

namespace {

// batond's environment minus what belongs to batond's own parent (socket activation,
// notify socket) and what batond sets per worker.
std::vector<std::pair<std::string, std::string>> BaseEnvironment() {
  std::vector<std::pair<std::string, std::string>> env;
  for (char** e = environ; e && *e; ++e) {
    std::string s(*e);
    auto eq = s.find('=');
    if (eq == std::string::npos) continue;
    std::string key = s.substr(0, eq);
    if (key.rfind("LISTEN_", 0) == 0 || key.rfind("EINHORN_", 0) == 0 || key.rfind("BATON_", 0) == 0 ||
        key == "NOTIFY_SOCKET" || key == "NGINX" || key == "WATCHDOG_USEC" || key == "WATCHDOG_PID")
      continue;
    env.emplace_back(key, s.substr(eq + 1));
  }
  return env;
}

int ParentPid(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  auto close = line.rfind(')');  // the command name may contain spaces and parentheses
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  char state;
  int ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

}  // namespace

Supervisor::Supervisor(Config config)
    : config_(std::move(config)),
      clock_(MakeAsioClock(io_)),
      launcher_(io_),
      probes_(io_, launcher_),
      signals_(io_),
      api_(*this) {}

Supervisor::~Supervisor() {
  services_.clear();
  control_.reset();
  notify_.reset();
  for (auto& [name, list] : listeners_)
    for (auto& l : list)
      if (l.address.kind == SocketAddress::Kind::kUnix) ::unlink(l.address.path.c_str());
}

std::unique_ptr<Supervisor> Supervisor::Create(Config config, CreateError* error) {
  std::unique_ptr<Supervisor> s(new Supervisor(std::move(config)));
  int code = kExitSystem;
  Status st = s->Init(&code);
  if (!st.ok()) {
    if (error) *error = {st, code};
    return nullptr;
  }
  return s;
}

Status Supervisor::Init(int* exit_code) {
  started_wall_ = clock_->WallSeconds();
  const auto& d = config_.daemon;
  std::error_code ec;
  std::filesystem::create_directories(d.state_dir, ec);
  if (ec) return Status::FromErrno("create state_dir " + d.state_dir, ec.value());
  ::chmod(d.state_dir.c_str(), 0700);

  std::string warning;
  auto history = HistoryStore::Open(d.state_dir, &warning);
  if (!history.ok()) return history.status();
  if (!warning.empty()) spdlog::warn("{}", warning);
  history_ = std::move(*history);

  for (const auto& svc : config_.services) {
    for (const auto& l : svc.listeners) {
      auto bound = BindListener(l);
      if (!bound.ok()) {
        *exit_code = kExitUsage;  // e.g. port in use: the config must change
        return Status::InvalidArgument(config_.path + ":" + std::to_string(l.line) + ": service." + svc.name +
                                       ".listen." + l.name + ": " + bound.status().message());
      }
      spdlog::info("{}: listening on {} as '{}'", svc.name, bound->address.ToString(), l.name);
      listeners_[svc.name].push_back(std::move(*bound));
    }
  }

  auto notify = NotifyServer::Create(io_, d.state_dir + "/notify.sock",
                                     [this](int pid, const NotifyMessage& m) { OnNotify(pid, m); });
  if (!notify.ok()) return notify.status();
  notify_ = std::move(*notify);

  auto control = ControlServer::Create(io_, d.control_socket, api_);
  if (!control.ok()) return control.status();
  control_ = std::move(*control);

  auto base_env = BaseEnvironment();
  for (const auto& svc : config_.services) {
    ServiceIo sio;
    for (const auto& l : listeners_[svc.name])
      sio.listeners.push_back(ListenerRef{l.name, l.fd.get(), l.address.is_inet() ? l.address.port : 0,
                                          l.address.ToString()});
    sio.notify_socket = notify_->path();
    sio.base_env = base_env;
    sio.pick_probe_port = [] { return PickFreeLoopbackPort(); };
    std::string name = svc.name;
    sio.on_result = [this, name](const Release& release, const HandoverResult& result) {
      Status s = history_->Record(name, release, result, clock_->WallSeconds());
      if (!s.ok()) spdlog::error("{}: history not saved: {}", name, s.message());
    };
    auto service = std::make_unique<Service>(*clock_, launcher_, probes_, svc, std::move(sio),
                                             [this](const ServiceEvent& e) { Publish(e); });
    service->SetNextGenerationId(history_->MaxGeneration(svc.name) + 1);
    services_.push_back(std::move(service));
  }
  return Status::Ok();
}

void Supervisor::StartServices() {
  for (auto& svc : services_) {
    const std::string& name = svc->name();
    Release release{svc->config().version, std::nullopt, {}, clock_->WallSeconds()};
    if (auto last = history_->LastPromoted(name)) {
      release = *last;
      spdlog::info("{}: resuming the last promoted release {}", name, release.version);
      svc->SetPreviousRelease(history_->PreviousPromoted(name, release.version));
    }
    Status s = svc->Handover(release, HandoverKind::kStart, [name](const HandoverResult& r) {
      if (!r.promoted) spdlog::error("{}: start of {} failed: {}", name, r.version, r.reason);
    });
    if (!s.ok()) spdlog::error("{}: cannot start {}: {}", name, release.version, s.message());
  }
}

int Supervisor::Run() {
  std::signal(SIGPIPE, SIG_IGN);
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  std::function<void()> wait_signal;
  wait_signal = [this, &wait_signal] {
    signals_.async_wait([this, &wait_signal](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      OnSignal(sig);
      wait_signal();
    });
  };
  wait_signal();
  StartServices();
  spdlog::info("batond running: {} service(s), control socket {}", services_.size(), config_.daemon.control_socket);
  io_.run();
  spdlog::info("batond stopped");
  return kExitOk;
}

void Supervisor::OnSignal(int sig) {
  if (sig == SIGHUP) {
    spdlog::warn("SIGHUP: configuration reload is not supported by this version; nothing changed");
    return;
  }
  if (stopping_) {
    spdlog::warn("{} again: already draining, still waiting for workers to exit", SignalName(sig));
    return;
  }
  spdlog::info("{}: draining every service", SignalName(sig));
  Shutdown();
}

void Supervisor::Shutdown() {
  stopping_ = true;
  control_.reset();  // no new requests while draining
  auto remaining = std::make_shared<size_t>(services_.size());
  auto finish = [this] {
    signals_.cancel();
    notify_.reset();
    io_.stop();
  };
  if (services_.empty()) return finish();
  for (auto& svc : services_)
    svc->Shutdown([remaining, finish] {
      if (--*remaining == 0) finish();
    });
}

void Supervisor::OnNotify(int pid, const NotifyMessage& msg) {
  // The sender may be a worker or one of its descendants (systemd-notify, a shell script).
  for (int p = pid, depth = 0; p > 1 && depth < 16; p = ParentPid(p), ++depth) {
    for (auto& svc : services_)
      if (svc->OwnsPid(p)) return svc->OnNotify(p, msg);
  }
  ++notify_ignored_;
  spdlog::debug("notify: ignored a message from pid {}, which is no worker of ours", pid);
}

void Supervisor::Publish(const ServiceEvent& e) {
  // Copy: a subscriber may unsubscribe (or others) while we iterate.
  auto subscribers = subscribers_;
  for (auto& [id, fn] : subscribers) fn(e);
}

Service* Supervisor::Find(const std::string& name) {
  for (auto& s : services_)
    if (s->name() == name) return s.get();
  return nullptr;
}

nlohmann::json Supervisor::DaemonStatus() {
  nlohmann::json services = nlohmann::json::array();
  for (auto& s : services_) services.push_back(s->Describe());
  return {{"daemon",
           {{"pid", ::getpid()},
            {"version", BATON_VERSION},
            {"started_at", started_wall_},
            {"uptime_s", clock_->WallSeconds() - started_wall_},
            {"config", config_.path},
            {"state", stopping_ ? "stopping" : "running"},
            {"notify_ignored", notify_ignored_}}},
          {"services", std::move(services)}};
}

Result<nlohmann::json> Supervisor::ServiceStatus(const std::string& service) {
  Service* s = Find(service);
  if (!s) return Status::NotFound("no service named '" + service + "'");
  return s->Describe();
}

Result<nlohmann::json> Supervisor::History(const std::string& service) {
  if (!Find(service)) return Status::NotFound("no service named '" + service + "'");
  return nlohmann::json{{"service", service}, {"releases", history_->Entries(service)}};
}

Status Supervisor::RunHandover(Service& svc, const Release& release, HandoverKind kind, Progress progress,
                               Done done) {
  uint64_t id = next_subscriber_++;
  Status s = svc.Handover(release, kind, [this, id, done](const HandoverResult& r) {
    subscribers_.erase(id);
    done(r);
  });
  if (!s.ok()) return s;
  // Progress is what happens to the new generation, and the draining of the old one;
  // other generations' events (a drain still finishing) would only confuse.
  std::string name = svc.name();
  int64_t gen = svc.pending_generation();
  subscribers_[id] = [name, gen, progress](const ServiceEvent& e) {
    if (e.service == name && progress && (e.generation == gen || e.type == "draining")) progress(e);
  };
  return s;
}

Status Supervisor::Upgrade(const std::string& service, const UpgradeRequest& request, Progress progress, Done done) {
  Service* svc = Find(service);
  if (!svc) return Status::NotFound("no service named '" + service + "'");
  Release release{request.version, request.command, request.env, clock_->WallSeconds()};
  return RunHandover(*svc, release, HandoverKind::kUpgrade, std::move(progress), std::move(done));
}

Status Supervisor::Rollback(const std::string& service, const std::optional<std::string>& to, Progress progress,
                            Done done) {
  Service* svc = Find(service);
  if (!svc) return Status::NotFound("no service named '" + service + "'");
  const Generation* live = svc->live();
  std::optional<Release> target;
  if (to) {
    target = history_->Find(service, *to);
    if (!target) return Status::NotFound("service '" + service + "' has no release with version '" + *to + "' in its history");
  } else {
    target = history_->PreviousPromoted(service, live ? live->release.version : "");
    if (!target) return Status::FailedPrecondition("service '" + service + "' has no earlier promoted release to roll back to");
  }
  target->created_at = clock_->WallSeconds();
  return RunHandover(*svc, *target, HandoverKind::kRollback, std::move(progress), std::move(done));
}

}  // namespace baton
