// Self-upgrade: batond replaces its own program and keeps its pid, so workers stay its
// children, and every socket, worker, stored descriptor and proxied connection is carried
// over in a sealed memfd. In order: refuse while anything is in motion; check that the
// new binary reads our state format (`--resume-formats`); answer the operator; capture
// the state; exec. The new program checks the state before it takes anything over and,
// on any doubt, executes the previous program again with the same state
// (ResumeFromState), which then reports why.
#include <unistd.h>

#include <csignal>
#include <sstream>

#include "supervisor/base/log.h"
#include "supervisor/base/system_names.h"
#include "supervisor/upgrade/carried_state.h"
#include "supervisor/upgrade/reexec.h"
#include "supervisor/config/address.h"
#include "supervisor/supervisor.h"

namespace baton {

namespace {

using Json = nlohmann::json;

constexpr auto kCheckTimeout = std::chrono::seconds(10);
constexpr auto kHealthQuietLimit = std::chrono::seconds(1);

// "batond 0.4.0 state-formats 1 2": the version, if the formats include ours.
std::optional<std::string> ReadsOurFormat(const std::string& output) {
  std::istringstream in(output);
  std::string word, version, label;
  in >> word >> version >> label;
  if (word != "batond" || label != "state-formats") return std::nullopt;
  for (int format; in >> format;)
    if (format == kCarriedStateFormat) return version;
  return std::nullopt;
}

// Everything the new program checks before it takes anything over; empty when all is
// well, and then `config` is the configuration in use.
std::string CheckCarried(const CarriedState& state, Config* config) {
  auto parsed = ParseConfig(state.config_text, state.config_path);
  if (!parsed.ok()) return "the configuration in use does not load: " + parsed.status().message();
  // Every carried descriptor closes at this program's own exec again: the components
  // that take them over need not set it one by one.
  if (Status s = CloseCarriedAtExec(state.fds); !s.ok()) return "not carried over: " + s.message();
  for (const auto& child : state.children)
    if (!IsOwnChild(child.pid)) return "process " + std::to_string(child.pid) + " is no child of batond";
  for (const auto& svc : parsed->services)
    if (!state.FindService(svc.name)) return "service '" + svc.name + "' was not carried over";
  const char* failpoint = ::getenv("BATON_FAILPOINT");
  if (failpoint && std::string(failpoint) == "resume") return "BATON_FAILPOINT=resume";
  *config = std::move(*parsed);
  config->text = state.config_text;
  return "";
}

}  // namespace

Status Supervisor::CheckQuiet() const {
  if (stopping_) return Status::FailedPrecondition("batond is shutting down");
  for (const auto& slot : removing_)
    if (!slot->drained)
      return Status::Conflict("service '" + slot->service->name() + "', removed by a reload, is draining");
  size_t workers = 0;
  for (const auto& slot : services_) {
    if (Status s = slot->service->CheckQuiet(); !s.ok()) return s;
    if (!slot->retired_proxies.empty())
      return Status::Conflict("service '" + slot->service->name() +
                              "': a proxy listener replaced by a reload still has connections open");
    if (const Generation* live = slot->service->live())
      for (const auto& w : live->workers) workers += w->pid > 0 ? 1 : 0;
  }
  if (launcher_.running() > workers)
    return Status::Conflict(std::to_string(launcher_.running() - workers) + " probe or helper process(es) running");
  return Status::Ok();
}

Status Supervisor::SelfUpgrade(const std::string& binary, SelfUpgradeAccepted accepted) {
  if (self_upgrading_) return Status::Conflict("a self-upgrade is already underway");
  if (Status s = CheckQuiet(); !s.ok())
    return Status::Conflict("self-upgrade refused, try again shortly: " + s.message());
  std::string path = ResolveExecutable(binary.empty() ? own_binary_ : binary, {}, "");
  if (path.empty() || path[0] != '/') {
    char cwd[4096];
    if (!path.empty() && ::getcwd(cwd, sizeof cwd)) path = std::string(cwd) + "/" + path;
  }
  if (path.empty())
    return Status::InvalidArgument("self-upgrade: " + (binary.empty() ? own_binary_ : binary) +
                                   " is not an executable file");
  self_upgrading_ = true;
  LaunchSpec spec;
  spec.tag = "self-upgrade check";
  spec.argv = {path, "--resume-formats"};
  spec.env = ProcessEnvironment();
  spec.log_output = false;
  auto output = std::make_shared<std::string>();
  auto deadline = std::make_shared<std::unique_ptr<Timer>>();
  ProcessEvents events;
  events.on_line = [output](OutputStream stream, std::string_view line) {
    if (stream == OutputStream::kStdout && output->size() < 4096) *output += std::string(line) + "\n";
  };
  events.on_exit = [this, path, output, deadline, accepted](const ExitInfo& exit) {
    deadline->reset();
    auto version = exit.success() ? ReadsOurFormat(*output) : std::nullopt;
    if (!version) {
      self_upgrading_ = false;
      std::string why = exit.success() ? "does not read state format " + std::to_string(kCarriedStateFormat) +
                                             " (it printed '" + output->substr(0, output->find('\n')) + "')"
                                       : exit.Describe();
      return accepted(Status::FailedPrecondition("self-upgrade refused: " + path + " --resume-formats " + why),
                      nullptr);
    }
    int attempt = self_upgrade_.value("attempts", 0) + 1;
    Json answer = {{"accepted", true},
                   {"attempt", attempt},
                   {"pid", ::getpid()},
                   {"binary", path},
                   {"from_version", BATON_VERSION},
                   {"to_version", *version}};
    accepted(answer, [this, path, version = *version] {
      if (health_) health_->StopAccepting();
      ReplaceProgramWhenQuiet(path, version, clock_->Now() + kHealthQuietLimit);
    });
  };
  auto pid = launcher_.Launch(spec, std::move(events));
  if (!pid.ok()) {
    self_upgrading_ = false;
    return Status::FailedPrecondition("self-upgrade refused: cannot run " + path + ": " + pid.status().message());
  }
  *deadline = clock_->After(kCheckTimeout, [this, pid = *pid] { launcher_.SignalGroup(pid, SIGKILL); });
  return Status::Ok();
}

CarriedState Supervisor::CaptureState(std::vector<int>* keep) {
  CarriedState state;
  for (auto& slot : services_) {
    CarriedService& svc = state.services.emplace_back();
    svc.name = slot->service->name();
    for (const auto& l : slot->listeners) {
      keep->push_back(l.fd.get());
      svc.listeners.push_back({l.name, l.address.ToString(), l.fd.get(), l.from_systemd});
    }
    for (auto& p : slot->proxies) svc.proxies[p->name()] = p->Export(keep);
    svc.logs = slot->logs.Last(slot->logs.size());
    svc.service = slot->service->Snapshot(keep);
    svc.steering = slot->steering->Export(keep);
  }
  keep->push_back(control_->fd());
  keep->push_back(notify_->fd());
  if (health_) keep->push_back(state.health_fd = health_->fd());
  if (web_) keep->push_back(state.web_fd = web_->fd());
  state.children = launcher_.Export(keep);
  state.children_watch_fd = launcher_.watch_set_fd();
  state.version = BATON_VERSION;
  state.binary = own_binary_;
  state.config_path = config_.path;
  state.config_text = config_.text;
  state.started_wall = started_wall_;
  state.orphans_reaped = orphans_reaped_;
  state.notify_ignored = notify_ignored_;
  state.announced_ready = announced_ready_;
  state.self_upgrade = self_upgrade_;
  state.control_fd = control_->fd();
  state.notify_fd = notify_->fd();
  if (auto limit = launcher_.child_fd_limit()) state.child_fd_limit = {limit->rlim_cur, limit->rlim_max};
  return state;
}

// Health checks already accepted are answered first (at most kHealthQuietLimit): the exec
// would reset their connections. Those not yet accepted wait for the next program.
void Supervisor::ReplaceProgramWhenQuiet(const std::string& binary, const std::string& to_version,
                                         SteadyTime deadline) {
  if (health_ && health_->clients() > 0 && clock_->Now() < deadline) {
    replace_retry_ = clock_->After(std::chrono::milliseconds(5), [this, binary, to_version, deadline] {
      ReplaceProgramWhenQuiet(binary, to_version, deadline);
    });
    return;
  }
  ReplaceProgram(binary, to_version);
  if (health_) health_->StartAccepting();  // still here: the program was not replaced
}

void Supervisor::ReplaceProgram(const std::string& binary, const std::string& to_version) {
  int attempt = self_upgrade_.value("attempts", 0) + 1;
  self_upgrade_["attempts"] = attempt;
  Json outcome = {
      {"attempt", attempt}, {"binary", binary}, {"from_version", BATON_VERSION}, {"to_version", to_version}};
  auto fail = [&](const std::string& why) {
    self_upgrading_ = false;
    outcome["ok"] = false;
    outcome["reason"] = why;
    RecordSelfUpgrade(outcome);
  };
  if (Status s = CheckQuiet(); !s.ok()) return fail("became busy before the program was replaced: " + s.message());
  auto program = OpenOwnProgram();
  if (!program.ok()) return fail(program.status().message());
  UniqueFd program_fd(*program);
  std::vector<int> keep;
  CarriedState state = CaptureState(&keep);
  keep.push_back(program_fd.get());
  state.fds = keep;
  state.program_fd = program_fd.get();
  state.exec = {binary, attempt, BATON_VERSION, to_version, clock_->WallSeconds()};
  auto memfd = WriteSealedState(EncodeCarriedState(state));
  if (!memfd.ok()) return fail(memfd.status().message());
  UniqueFd state_fd(*memfd);
  keep.push_back(state_fd.get());
  if (Status s = SetKeptAcrossExec(keep, true); !s.ok()) {
    (void)SetKeptAcrossExec(keep, false);
    return fail(s.message());
  }
  spdlog::info("self-upgrade {}: replacing batond {} with {} ({}), carrying {} descriptors", attempt, BATON_VERSION,
               binary, to_version, keep.size());
  spdlog::default_logger()->flush();
  Status s = ExecProgram(binary, -1, {binary, "--resume-state", std::to_string(state_fd.get())});
  (void)SetKeptAcrossExec(keep, false);
  fail(s.message());
}

void Supervisor::RecordSelfUpgrade(Json outcome) {
  bool ok = outcome.value("ok", false);
  std::string message =
      ok ? "batond " + outcome.value("from_version", "") + " -> " + outcome.value("to_version", "") + " (" +
               outcome.value("binary", "") + ")"
         : "self-upgrade failed, still running " + std::string(BATON_VERSION) + ": " + outcome.value("reason", "");
  if (ok)
    spdlog::info("{}", message);
  else
    spdlog::error("{}", message);
  outcome["time"] = clock_->WallSeconds();
  self_upgrade_["last"] = std::move(outcome);
  Publish(ServiceEvent{ok ? EventType::kSelfUpgraded : EventType::kSelfUpgradeFailed, "batond", 0, "", ::getpid(),
                       message, clock_->WallSeconds()});
  if (systemd_) systemd_->Send("STATUS=" + StatusLine());
}

Result<std::vector<std::vector<BoundListener>>> Supervisor::CarriedListeners() {
  std::vector<std::vector<BoundListener>> out;
  for (const auto& svc : config_.services) {
    const CarriedService* carried = carried_->FindService(svc.name);
    std::vector<BoundListener> bound;
    for (const auto& l : svc.listeners) {
      const CarriedListener* c = carried ? carried->FindListener(l.name) : nullptr;
      if (!c) return Status::InvalidArgument("service." + svc.name + ".listen." + l.name + " was not carried over");
      auto address = ParseSocketAddress(c->address);
      if (!address.ok()) return address.status();
      (void)SetKeptAcrossExec({c->fd}, false);
      bound.push_back(BoundListener{l.name, *address, UniqueFd(c->fd), c->from_systemd});
    }
    out.push_back(std::move(bound));
  }
  return out;
}

Supervisor::Resumed Supervisor::CreateResumed(Config config, CarriedState carried) {
  Resumed r;
  r.supervisor.reset(new Supervisor(std::move(config)));
  r.supervisor->carried_ = std::move(carried);
  int exit_code = kExitSystem;  // the caller returns to the previous program, whatever the cause
  r.status = r.supervisor->InitResumed(&exit_code);
  return r;
}

void Supervisor::RestoreCarried() {
  const CarriedState state = std::move(*carried_);
  carried_.reset();
  size_t workers = 0, connections = 0;
  for (auto& slot : services_) {
    const std::string& name = slot->service->name();
    const CarriedService* carried = state.FindService(name);
    Status s = carried ? slot->service->Restore(carried->service) : Status::NotFound("not carried over");
    if (!s.ok()) {
      spdlog::error("{}: cannot take over its workers ({}); starting it anew", name, s.message());
      slot->started = true;
      StartService(*slot->service);
      continue;
    }
    slot->started = slot->service->waiting_for().empty();  // a waiting one waits on
    for (auto& p : slot->proxies) {
      if (auto c = carried->proxies.find(p->name()); c != carried->proxies.end()) {
        connections += c->second.value("connections", Json::array()).size();
        if (Status a = p->Adopt(c->second); !a.ok()) spdlog::error("{}", a.message());
      }
      p->Resume();
    }
    for (const auto& line : carried->logs) slot->logs.Add(line);
    if (const Generation* live = slot->service->live())
      for (const auto& w : live->workers) workers += w->pid > 0 ? 1 : 0;
  }
  launcher_.KillUnclaimed();
  Json outcome = {{"attempt", state.exec.attempt},
                  {"binary", state.exec.binary},
                  {"from_version", state.exec.from_version},
                  {"to_version", state.exec.to_version}};
  if (state.resume_failed.empty()) {
    outcome["ok"] = true;
    outcome["duration_ms"] = (clock_->WallSeconds() - state.exec.at) * 1000;
    outcome["workers_kept"] = workers;
    outcome["connections_kept"] = connections;
  } else {
    outcome["ok"] = false;
    outcome["reason"] = "the new program could not take over, so the previous one resumed: " + state.resume_failed;
  }
  RecordSelfUpgrade(std::move(outcome));
}

namespace {

// This program cannot take over: execute the previous one again with the same state.
int ReturnToPrevious(const CarriedState& state, int state_fd, const std::string& problem) {
  spdlog::error("self-upgrade: this program cannot take over ({}); returning to the previous program", problem);
  ::unsetenv("BATON_FAILPOINT");
  (void)SetKeptAcrossExec(state.fds, true);
  std::string binary = state.binary.empty() ? "batond" : state.binary;
  Status s = ExecProgram(binary, state.program_fd,
                         {binary, "--resume-state", std::to_string(state_fd), "--resume-failed", problem});
  spdlog::critical("self-upgrade: cannot return to the previous program: {}", s.message());
  return kExitSystem;
}

}  // namespace

int ResumeFromState(int state_fd, const std::string& previous_failure) {
  auto text = ReadSealedState(state_fd);
  if (!text.ok()) {
    spdlog::critical("self-upgrade: cannot read the carried state: {}", text.status().message());
    return kExitSystem;
  }
  CarriedState state;
  Config config;
  Status decoded = DecodeCarriedState(*text, state);
  std::string problem = decoded.ok() ? CheckCarried(state, &config) : "malformed state: " + decoded.message();
  if (!problem.empty()) {
    if (previous_failure.empty()) return ReturnToPrevious(state, state_fd, problem);
    spdlog::critical("self-upgrade: the previous program cannot take over again either: {}", problem);
    return kExitSystem;
  }
  (void)SetUpDaemonLog(config.daemon);
  if (!previous_failure.empty()) state.resume_failed = previous_failure;
  const int program_fd = state.program_fd;
  // Until this program runs, the descriptors belong to the previous one: a supervisor that
  // fails to take over is kept, unclosed, while exec returns to that program.
  // The way back is all ReturnToPrevious reads: the state itself moves on, uncopied.
  CarriedState way_back;
  way_back.binary = state.binary;
  way_back.program_fd = state.program_fd;
  way_back.fds = state.fds;
  Supervisor::Resumed resumed = Supervisor::CreateResumed(std::move(config), std::move(state));
  if (!resumed.status.ok()) {
    if (previous_failure.empty()) return ReturnToPrevious(way_back, state_fd, resumed.status.message());
    spdlog::critical("self-upgrade: the previous program cannot take over again either: {}", resumed.status.message());
    return kExitSystem;
  }
  ::close(program_fd);
  ::close(state_fd);
  return resumed.supervisor->Run();
}

}  // namespace baton
