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

#include "supervisor/base/json_text.h"
#include "supervisor/base/log.h"
#include "supervisor/upgrade/reexec.h"
#include "supervisor/config/address.h"
#include "supervisor/supervisor.h"

extern char** environ;

namespace baton {

namespace {

using Json = nlohmann::json;

constexpr auto kCheckTimeout = std::chrono::seconds(10);

std::vector<std::pair<std::string, std::string>> CurrentEnvironment() {
  std::vector<std::pair<std::string, std::string>> env;
  for (char** e = environ; e && *e; ++e) {
    std::string s(*e);
    auto eq = s.find('=');
    if (eq != std::string::npos) env.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return env;
}

// "batond 0.4.0 state-formats 1 2": the version, if the formats include ours.
std::optional<std::string> ReadsOurFormat(const std::string& output) {
  std::istringstream in(output);
  std::string word, version, label;
  in >> word >> version >> label;
  if (word != "batond" || label != "state-formats") return std::nullopt;
  for (int format; in >> format;)
    if (format == kSelfUpgradeStateFormat) return version;
  return std::nullopt;
}

const Json* FindNamed(const Json& list, const std::string& name) {
  for (const auto& e : list)
    if (e.value("name", "") == name) return &e;
  return nullptr;
}

// Everything the new program checks before it takes anything over; empty when all is well.
std::string CheckCarried(const Json& state) {
  try {
    if (state.at("format").get<int>() != kSelfUpgradeStateFormat)
      return "state format " + state["format"].dump() + " is not " + std::to_string(kSelfUpgradeStateFormat);
    const Json& config = state.at("config");
    auto parsed = ParseConfig(config.at("text").get<std::string>(), config.at("path").get<std::string>());
    if (!parsed.ok()) return "the configuration in use does not load: " + parsed.status().message();
    for (const auto& fd : state.at("fds"))
      if (!IsOpenFd(fd.get<int>())) return "descriptor " + fd.dump() + " was not carried over";
    for (const auto& child : state.at("children"))
      if (!IsOwnChild(child.at("pid").get<int>())) return "process " + child["pid"].dump() + " is no child of batond";
    for (const auto& svc : parsed->services)
      if (!FindNamed(state.at("services"), svc.name)) return "service '" + svc.name + "' was not carried over";
  } catch (const Json::exception& e) {
    return std::string("malformed state: ") + e.what();
  }
  const char* failpoint = ::getenv("BATON_FAILPOINT");
  if (failpoint && std::string(failpoint) == "resume") return "BATON_FAILPOINT=resume";
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
  spec.env = CurrentEnvironment();
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
      std::string why = exit.success() ? "does not read state format " + std::to_string(kSelfUpgradeStateFormat) +
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
    accepted(answer, [this, path, version = *version] { ReplaceProgram(path, version); });
  };
  auto pid = launcher_.Launch(spec, std::move(events));
  if (!pid.ok()) {
    self_upgrading_ = false;
    return Status::FailedPrecondition("self-upgrade refused: cannot run " + path + ": " + pid.status().message());
  }
  *deadline = clock_->After(kCheckTimeout, [this, pid = *pid] { launcher_.SignalGroup(pid, SIGKILL); });
  return Status::Ok();
}

Json Supervisor::CaptureState(std::vector<int>* keep) {
  Json services = Json::array();
  for (auto& slot : services_) {
    Json listeners = Json::array();
    for (const auto& l : slot->listeners) {
      keep->push_back(l.fd.get());
      listeners.push_back(
          {{"name", l.name}, {"address", l.address.ToString()}, {"fd", l.fd.get()}, {"from_systemd", l.from_systemd}});
    }
    Json proxies = Json::object();
    for (auto& p : slot->proxies) proxies[p->name()] = p->Export(keep);
    Json logs = Json::array();
    for (const auto& line : slot->logs.Last(slot->logs.size())) logs.push_back(line.ToJson(slot->service->name()));
    services.push_back({{"name", slot->service->name()},
                        {"listeners", std::move(listeners)},
                        {"service", slot->service->Snapshot(keep)},
                        {"proxies", std::move(proxies)},
                        {"steering", slot->steering->Export(keep)},
                        {"logs", std::move(logs)}});
  }
  keep->push_back(control_->fd());
  keep->push_back(notify_->fd());
  Json children = launcher_.Export(keep);
  Json state = {{"format", kSelfUpgradeStateFormat},
                {"version", BATON_VERSION},
                {"binary", own_binary_},
                {"config", {{"path", config_.path}, {"text", config_.text}}},
                {"started_wall", started_wall_},
                {"orphans_reaped", orphans_reaped_},
                {"notify_ignored", notify_ignored_},
                {"announced_ready", announced_ready_},
                {"self_upgrade", self_upgrade_},
                {"control_fd", control_->fd()},
                {"notify_fd", notify_->fd()},
                {"services", std::move(services)},
                {"children", std::move(children)}};
  if (auto limit = launcher_.child_fd_limit()) state["child_fd_limit"] = {limit->rlim_cur, limit->rlim_max};
  return state;
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
  Json state = CaptureState(&keep);
  keep.push_back(program_fd.get());
  state["fds"] = keep;
  state["program_fd"] = program_fd.get();
  state["exec"] = {{"binary", binary},
                   {"attempt", attempt},
                   {"from_version", BATON_VERSION},
                   {"to_version", to_version},
                   {"at", clock_->WallSeconds()}};
  auto memfd = WriteSealedState(JsonText(state));
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

const nlohmann::json* Supervisor::FindCarriedService(const std::string& name) const {
  return FindNamed((*carried_)["services"], name);
}

Result<std::vector<std::vector<BoundListener>>> Supervisor::CarriedListeners() {
  std::vector<std::vector<BoundListener>> out;
  for (const auto& svc : config_.services) {
    const Json* carried = FindNamed((*carried_)["services"], svc.name);
    std::vector<BoundListener> bound;
    for (const auto& l : svc.listeners) {
      const Json* c = carried ? FindNamed((*carried)["listeners"], l.name) : nullptr;
      if (!c) return Status::InvalidArgument("service." + svc.name + ".listen." + l.name + " was not carried over");
      auto address = ParseSocketAddress(c->at("address").get<std::string>());
      if (!address.ok()) return address.status();
      int fd = c->at("fd").get<int>();
      (void)SetKeptAcrossExec({fd}, false);
      bound.push_back(BoundListener{l.name, *address, UniqueFd(fd), c->value("from_systemd", false)});
    }
    out.push_back(std::move(bound));
  }
  return out;
}

std::unique_ptr<Supervisor> Supervisor::CreateResumed(Config config, const Json& carried, CreateError* error) {
  std::unique_ptr<Supervisor> s(new Supervisor(std::move(config)));
  s->carried_ = carried;
  int code = kExitSystem;
  Status st = s->Init(&code);
  if (!st.ok()) {
    if (error) *error = {st, code};
    // Its descriptors belong to the previous program, which the caller returns to:
    // nothing may close them or remove socket files.
    (void)s.release();
    return nullptr;
  }
  return s;
}

void Supervisor::RestoreCarried() {
  const Json state = std::move(*carried_);
  carried_.reset();
  size_t workers = 0, connections = 0;
  for (auto& slot : services_) {
    const std::string& name = slot->service->name();
    const Json* carried = FindNamed(state["services"], name);
    Status s = carried ? slot->service->Restore((*carried)["service"]) : Status::NotFound("not carried over");
    if (!s.ok()) {
      spdlog::error("{}: cannot take over its workers ({}); starting it anew", name, s.message());
      StartService(*slot->service);
      continue;
    }
    for (auto& p : slot->proxies) {
      if (carried->at("proxies").contains(p->name())) {
        const Json& c = (*carried)["proxies"][p->name()];
        connections += c.at("connections").size();
        if (Status a = p->Adopt(c); !a.ok()) spdlog::error("{}", a.message());
      }
      p->Resume();
    }
    for (const auto& line : carried->value("logs", Json::array())) slot->logs.Add(LogLine::FromJson(line));
    if (const Generation* live = slot->service->live())
      for (const auto& w : live->workers) workers += w->pid > 0 ? 1 : 0;
  }
  launcher_.KillUnclaimed();
  const Json& exec = state["exec"];
  Json outcome = {{"attempt", exec["attempt"]},
                  {"binary", exec["binary"]},
                  {"from_version", exec["from_version"]},
                  {"to_version", exec["to_version"]}};
  std::string failure = state.value("resume_failed", "");
  if (failure.empty()) {
    outcome["ok"] = true;
    outcome["duration_ms"] = (clock_->WallSeconds() - exec.value("at", 0.0)) * 1000;
    outcome["workers_kept"] = workers;
    outcome["connections_kept"] = connections;
  } else {
    outcome["ok"] = false;
    outcome["reason"] = "the new program could not take over, so the previous one resumed: " + failure;
  }
  RecordSelfUpgrade(std::move(outcome));
}

int ResumeFromState(int state_fd, const std::string& previous_failure) {
  auto text = ReadSealedState(state_fd);
  if (!text.ok()) {
    spdlog::critical("self-upgrade: cannot read the carried state: {}", text.status().message());
    return kExitSystem;
  }
  Json state = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!state.is_object()) {
    spdlog::critical("self-upgrade: the carried state is not JSON");
    return kExitSystem;
  }
  std::string problem = CheckCarried(state);
  Config config;
  std::unique_ptr<Supervisor> supervisor;
  if (problem.empty()) {
    auto parsed = ParseConfig(state["config"]["text"].get<std::string>(), state["config"]["path"].get<std::string>());
    config = std::move(*parsed);
    config.text = state["config"]["text"].get<std::string>();
    InitLogging(config.daemon.log_level);
    if (!previous_failure.empty()) state["resume_failed"] = previous_failure;
    Supervisor::CreateError error;
    supervisor = Supervisor::CreateResumed(std::move(config), state, &error);
    if (!supervisor) problem = error.status.message();
  }
  if (!problem.empty()) {
    if (!previous_failure.empty()) {
      spdlog::critical("self-upgrade: the previous program cannot take over again either: {}", problem);
      return kExitSystem;
    }
    spdlog::error("self-upgrade: this program cannot take over ({}); returning to the previous program", problem);
    ::unsetenv("BATON_FAILPOINT");
    std::vector<int> fds = state.value("fds", std::vector<int>{});
    (void)SetKeptAcrossExec(fds, true);
    Status s = ExecProgram(
        state.value("binary", "batond"), state.value("program_fd", -1),
        {state.value("binary", "batond"), "--resume-state", std::to_string(state_fd), "--resume-failed", problem});
    spdlog::critical("self-upgrade: cannot return to the previous program: {}", s.message());
    return kExitSystem;
  }
  ::close(state["program_fd"].get<int>());
  ::close(state_fd);
  return supervisor->Run();
}

}  // namespace baton
