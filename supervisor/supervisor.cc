// Supervisor: wiring between modules, the loop, signals and shutdown (start-up is in
// supervisor_startup.cc).
#include "supervisor/supervisor.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "supervisor/base/file_safety.h"
#include "supervisor/base/log.h"
#include "supervisor/base/number.h"
#include "supervisor/config/start_order.h"
#include "supervisor/upgrade/reexec.h"

namespace baton {

namespace {

int ParentPid(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  auto close = line.rfind(')');  // the command name may contain spaces and parentheses
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string state, ppid;
  rest >> state >> ppid;
  auto parsed = ParseInteger<int>(ppid, "/proc/PID/stat ppid", 0);
  return parsed.ok() ? *parsed : 0;
}

}  // namespace

Supervisor::Supervisor(Config config)
    : config_(std::move(config)),
      clock_(MakeAsioClock(io_)),
      launcher_(io_),
      probes_(io_, launcher_),
      ports_(config_.daemon.port_range, static_cast<uint32_t>(::getpid()) * 2654435761u),
      signals_(io_),
      api_(*this) {}

Supervisor::~Supervisor() {
  std::vector<std::string> unix_paths;
  for (auto* list : {&services_, &removing_})
    for (auto& slot : *list)
      for (auto& l : slot->listeners)
        if (l.address.kind == SocketAddress::Kind::kUnix && !l.from_systemd) unix_paths.push_back(l.address.path);
  services_.clear();
  removing_.clear();
  // A clean stop closes the listeners, as without the store: systemd must not hold them.
  if (keeper_) keeper_->KeepListeners({});
  control_.reset();
  notify_.reset();
  for (const auto& p : unix_paths) ::unlink(p.c_str());
}

// Orphans reparented to batond (as PID 1, or as the subreaper it makes itself otherwise)
// are reaped here; workers and probes are reaped by the launcher through their pidfds.
void Supervisor::ReapOrphans() {
  std::ifstream in("/proc/self/task/" + std::to_string(::getpid()) + "/children");
  std::vector<int> children;
  for (std::string word; in >> word;)
    if (auto pid = ParseInteger<int>(word, "/proc/self/task/PID/children", 1); pid.ok()) children.push_back(*pid);
  for (int pid : children) {
    if (launcher_.Tracks(pid)) continue;
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG) == 0 && info.si_pid == pid) {
      orphans_reaped_++;
      spdlog::debug("reaped orphan {}", pid);
    }
  }
}

nlohmann::json Supervisor::DescribeTunnels() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : tunnels_) {
    nlohmann::json sessions = nlohmann::json::array();
    for (const auto& s : t->sessions) sessions.push_back(s->Describe());
    out.push_back({{"name", t->config.name},
                   {"remote_bind", t->config.remote_host + ":" + std::to_string(t->config.remote_port)},
                   {"to", t->config.to_service + "." + t->config.to_listener},
                   {"sessions", std::move(sessions)}});
  }
  return out;
}

void Supervisor::OpenNotifySocketToWorkers() {
  bool other_users = false;
  for (const auto& svc : config_.services) other_users = other_users || !svc.user.empty() || !svc.group.empty();
  if (!other_users) return;
  ::chmod(config_.daemon.state_dir.c_str(), 0711);
  ::chmod(notify_->path().c_str(), 0666);
}

void Supervisor::StartService(Service& svc) {
  const std::string& name = svc.name();
  Release release{svc.config().version, std::nullopt, {}, clock_->WallSeconds()};
  if (auto last = history_->LastPromoted(name)) {
    release = *last;
    spdlog::info("{}: resuming the last promoted release {}", name, release.version);
    svc.SetPreviousRelease(history_->PreviousPromoted(name, release.version));
  }
  Status s = svc.Handover(release, HandoverKind::kStart, [name](const HandoverResult& r) {
    if (!r.promoted) spdlog::error("{}: start of {} failed: {}", name, r.version, r.reason);
  });
  if (!s.ok()) spdlog::error("{}: cannot start {}: {}", name, release.version, s.message());
}

int Supervisor::Run() {
  std::signal(SIGPIPE, SIG_IGN);
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  signals_.add(SIGCHLD);
  signals_.add(SIGUSR1);
  std::function<void()> wait_signal;
  wait_signal = [this, &wait_signal] {
    signals_.async_wait([this, &wait_signal](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      OnSignal(sig);
      wait_signal();
    });
  };
  wait_signal();
  UnblockHandledSignals();  // held back while a self-upgrade replaced the program
  if (carried_) RestoreCarried();
  StartWaiting();
  for (auto& t : tunnels_)
    if (!t->sessions.empty()) t->sessions.front()->Start();
  if (systemd_ && systemd_->watchdog_interval()) Watchdog();
  spdlog::info("batond running: {} service(s), control socket {}", services_.size(), config_.daemon.control_socket);
  // A handler that throws is a bug; the sockets this process holds matter more than the
  // one operation it broke, so the loop carries on (and the bug is counted and logged).
  for (;;) {
    try {
      io_.run();
      break;
    } catch (const std::exception& e) {
      ++handler_exceptions_;
      spdlog::critical("BUG: an event handler threw, the loop carries on: {}", e.what());
    }
  }
  spdlog::info("batond stopped");
  return kExitOk;
}

void Supervisor::OnSignal(int sig) {
  if (sig == SIGCHLD) return ReapOrphans();
  if (sig == SIGUSR1) return ReopenLogs();
  if (sig == SIGHUP) {
    if (stopping_) return;
    spdlog::info("SIGHUP: reloading {}", config_.path);
    auto r = Reload();
    if (!r.ok()) spdlog::error("reload rejected, the running configuration is kept: {}", r.status().message());
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
  if (systemd_) systemd_->Send("STOPPING=1\nSTATUS=draining every service");
  watchdog_.reset();
  control_.reset();  // no new requests while draining
  for (auto* list : {&services_, &removing_})
    for (auto& slot : *list)
      for (auto& p : slot->proxies) p->StopAccepting();
  size_t draining = services_.size();
  for (auto& slot : removing_) draining += slot->drained ? 0 : 1;
  size_t sessions = 0;
  for (auto& t : tunnels_) sessions += t->sessions.size();
  auto remaining = std::make_shared<size_t>(draining + sessions);
  auto finish = [this] {
    signals_.cancel();
    notify_.reset();
    io_.stop();
  };
  if (*remaining == 0) return finish();
  auto one_done = [remaining, finish] {
    if (--*remaining == 0) finish();
  };
  // Tunnels first: the edges stop accepting while the workers still serve what is open.
  for (auto& t : tunnels_)
    for (auto& session : t->sessions) session->Shutdown(t->config.shutdown_grace, one_done);
  for (auto& slot : removing_)
    if (!slot->drained) slot->service->Shutdown(one_done);
  for (auto& slot : services_) stop_unfinished_.insert(slot->service->name());
  StopInOrder(one_done);
}

void Supervisor::StopInOrder(std::function<void()> one_done) {
  const Config running = RunningConfig();
  for (auto& slot : services_) {
    const std::string& name = slot->service->name();
    if (stop_told_.count(name)) continue;
    bool first = true;  // nothing that starts after it is still running
    for (const auto& dependent : StopsBefore(running.services, name))
      first = first && !stop_unfinished_.count(dependent);
    if (!first) continue;
    stop_told_.insert(name);
    // Its callback may come at once (nothing to drain): the loop above must not go on
    // with a list that the callback changed, hence the post.
    slot->service->Shutdown([this, name, one_done] {
      stop_unfinished_.erase(name);
      one_done();
      boost::asio::post(io_, [this, one_done] { StopInOrder(one_done); });
    });
  }
}

void Supervisor::StartWaiting() {
  if (stopping_) return;
  const Config running = RunningConfig();
  std::set<std::string> started, live;
  for (const auto& slot : services_) {
    if (slot->started) started.insert(slot->service->name());
    if (slot->service->live()) live.insert(slot->service->name());
  }
  for (const auto& name : StartableNow(running.services, started, live)) {
    ServiceSlot* slot = Find(name);
    slot->started = true;
    slot->service->WaitFor({});
    StartService(*slot->service);
  }
  for (auto& slot : services_) {
    if (slot->started) continue;
    std::vector<std::string> missing;
    for (const auto& dep : slot->service->config().after)
      if (!live.count(dep)) missing.push_back(dep);
    if (missing != slot->service->waiting_for()) {
      std::string names;
      for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
      spdlog::info("{}: waiting for {} to be live before it starts", slot->service->name(), names);
    }
    slot->service->WaitFor(std::move(missing));
  }
}

void Supervisor::OnNotify(int pid, const NotifyMessage& msg) {
  // The sender may be a worker or one of its descendants (systemd-notify, a shell script).
  for (int p = pid, depth = 0; p > 1 && depth < 16; p = ParentPid(p), ++depth) {
    for (auto* list : {&services_, &removing_})
      for (auto& slot : *list)
        if (slot->service->OwnsPid(p)) return slot->service->OnNotify(p, msg);
  }
  ++notify_ignored_;
  spdlog::debug("notify: ignored a message from pid {}, which is no worker of ours", pid);
}

void Supervisor::Publish(const ServiceEvent& e) {
  if (systemd_) NotifySystemd(e);
  auto subscribers = subscribers_;  // a subscriber may unsubscribe while we iterate
  for (auto& [id, fn] : subscribers) fn(e);
}

void Supervisor::NotifySystemd(const ServiceEvent& e) {
  if (stopping_ || (e.type != EventType::kPromoted && e.type != EventType::kFailed && e.type != EventType::kFatal))
    return;
  for (const auto& slot : services_)
    if (StillStarting(*slot->service)) return;
  systemd_->Send(std::string(announced_ready_ ? "" : "READY=1\n") + "STATUS=" + StatusLine());
  announced_ready_ = true;
}

// Starting, or waiting for a service that is still starting (the start order has no
// cycle); not one that waits for a service that failed or was stopped.
bool Supervisor::StillStarting(const Service& svc) const {
  ServiceState state = svc.State();
  if (state == ServiceState::kStarting) return true;
  if (state != ServiceState::kWaiting) return false;
  for (const auto& dep : svc.waiting_for())
    if (const ServiceSlot* slot = Find(dep); slot && StillStarting(*slot->service)) return true;
  return false;
}

HealthView Supervisor::Health() const {
  HealthView view{stopping_, {}};
  for (const auto& slot : services_)
    view.services.push_back({slot->service->name(), slot->service->live() != nullptr, slot->service->StateName()});
  return view;
}

std::string Supervisor::StatusLine() const {
  std::string line;
  for (const auto& slot : services_) {
    const Generation* live = slot->service->live();
    line += (line.empty() ? "" : ", ") + slot->service->name() + " " + (live ? live->release.version : "-") + " (" +
            slot->service->StateName() + ")";
  }
  return line;
}

void Supervisor::Watchdog() {
  systemd_->Send("WATCHDOG=1");
  watchdog_ = clock_->After(*systemd_->watchdog_interval(), [this] { Watchdog(); });
}

uint64_t Supervisor::Subscribe(std::function<void(const ServiceEvent&)> fn) {
  uint64_t id = next_subscriber_++;
  subscribers_[id] = std::move(fn);
  return id;
}

void Supervisor::OnOutput(const std::string& service, const Generation& gen, int pid, OutputStream stream,
                          std::string_view line) {
  ServiceSlot* slot = Find(service);
  if (!slot) return;
  LogLine l{clock_->WallSeconds(),           gen.release.version, gen.id, pid,
            stream == OutputStream::kStderr, std::string(line)};
  if (slot->log_file) slot->log_file->Write(service, l);
  if (!log_followers_.empty()) {
    nlohmann::json j = l.ToJson(service);
    auto followers = log_followers_;
    for (auto& [id, follower] : followers)
      if (follower.first == service) follower.second(j);
  }
  slot->logs.Add(std::move(l));
}

Supervisor::ServiceSlot* Supervisor::Find(const std::string& name) const {
  for (auto& s : services_)
    if (s->service->name() == name) return s.get();
  return nullptr;
}

}  // namespace baton
