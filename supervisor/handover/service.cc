#include "supervisor/handover/service.h"

#include <csignal>

#include "supervisor/base/duration.h"
#include "supervisor/base/log.h"
#include "supervisor/handover/backoff.h"

namespace baton {

Service::Service(Clock& clock, ProcessLauncher& launcher, ProbeRunner& probes, ServiceConfig config, ServiceIo io,
                 EventSink sink)
    : clock_(clock),
      launcher_(launcher),
      probes_(probes),
      config_(std::move(config)),
      io_(std::move(io)),
      sink_(std::move(sink)) {}

Service::~Service() { alive_.End(); }

Status Service::Handover(const Release& release, HandoverKind kind, Done done) {
  if (shutting_down_) return Status::FailedPrecondition("batond is shutting down");
  if (handover_) {
    const Generation* g = FindGen(handover_->new_gen);
    return Status::Conflict("a " + std::string(HandoverKindName(handover_->kind)) + " of service '" + name() +
                            "' to version " + (g ? g->release.version : "?") + " (generation " +
                            std::to_string(handover_->new_gen) + ") is already in progress");
  }
  if (release.version.empty()) return Status::InvalidArgument("version must not be empty");
  if (stop_done_) return Status::Conflict("service '" + name() + "' is stopping");
  std::vector<Probe> probes;
  std::map<std::string, int> backend_ports;
  for (const auto& l : config_.listeners)
    if (l.mode == ListenMode::kProxy) backend_ports[l.name] = 1;
  auto spec = BuildLaunchSpec(release, nullptr, 0, backend_ports, &probes);
  if (!spec.ok()) return spec.status();
  if (Status s = launcher_.CheckExecutable(*spec); !s.ok()) return s;
  // Read now, so that a release picks up a changed file; a file that cannot be read or
  // parsed fails this handover only.
  std::vector<std::pair<std::string, std::string>> file_env;
  if (!config_.env_files.empty() && io_.read_env_files) {
    auto read = io_.read_env_files(config_.env_files);
    if (!read.ok()) return read.status();
    file_env = std::move(*read);
  }

  auto gen = std::make_unique<Generation>();
  gen->file_env = std::move(file_env);
  gen->id = next_gen_id_++;
  gen->release = release;
  gen->started = clock_.Now();
  gen->started_wall = clock_.WallSeconds();
  const Generation* old = live();
  if (io_.steering) {
    // Its own sockets, which get nothing until it is ready; with nothing live, the first
    // socket, where clients already wait.
    auto sockets = io_.steering->Open(gen->id, old == nullptr);
    if (!sockets.ok()) return sockets.status();
    gen->sockets = std::move(*sockets);
  }
  size_t batch = config_.rollout.batch > 0 && old ? static_cast<size_t>(config_.rollout.batch)
                                                  : static_cast<size_t>(config_.replicas);
  handover_ = Pending{kind, gen->id, old ? old->id : 0, batch, clock_.Now(), std::move(done)};
  bake_timer_.reset();
  recycle_queue_.clear();  // the new generation is fresh throughout
  Emit(EventType::kHandoverStarted, gen.get(), 0,
       std::string(HandoverKindName(kind)) + " to " + release.version + (old ? " from " + old->release.version : ""));
  Generation& started = *gen;
  gens_.push_back(std::move(gen));
  std::string from = old ? old->release.version : "";
  if (kind == HandoverKind::kRollback || kind == HandoverKind::kAutoRollback)
    RunHook("on_rollback", config_.hooks.on_rollback, &started, from, HandoverKindName(kind));
  if (config_.hooks.before_start.empty()) {
    kickoff_ = clock_.After(Duration(0), [this] { SpawnBatch(); });
    return Status::Ok();
  }
  // No worker starts before the hook says yes; its failure fails this handover only.
  int64_t id = started.id;
  RunHook("before_start", config_.hooks.before_start, &started, from, "", [this, id](Status s) {
    if (!handover_ || handover_->new_gen != id) return;  // ended meanwhile (a shutdown)
    if (!s.ok()) return FailHandover("the before_start hook failed: " + s.message());
    SpawnBatch();
  });
  return Status::Ok();
}

void Service::SpawnBatch() {
  if (!handover_) return;
  Generation* gen = FindGen(handover_->new_gen);
  size_t target = std::min(gen->workers.size() + handover_->batch, static_cast<size_t>(config_.replicas));
  while (gen->workers.size() < target) {
    auto w = std::make_unique<Worker>();
    w->id = gen->next_worker_id++;
    Worker& ref = *w;
    gen->workers.push_back(std::move(w));
    if (Status s = SpawnWorker(*gen, ref); !s.ok()) return FailHandover(s.message());
  }
}

// A new-generation worker passed every readiness check.
void Service::OnStartingWorkerReady(Generation& gen, Worker& w) {
  MarkReady(gen, w);
  for (const auto& other : gen.workers)
    if (other->phase != WorkerPhase::kReady) return;
  bool last_batch = gen.workers.size() >= static_cast<size_t>(config_.replicas);
  Generation* old = FindGen(handover_->old_gen);
  if (!last_batch) {
    // Rolling: retire as many old workers as just became ready, then start the next batch.
    if (old) {
      size_t to_stop = handover_->batch;
      for (auto& ow : old->workers)
        if (to_stop > 0 && ow->active()) {
          StopWorker(*old, *ow);
          --to_stop;
        }
    }
    Emit(EventType::kBatchReady, &gen, 0,
         std::to_string(gen.workers.size()) + " of " + std::to_string(config_.replicas) + " workers ready");
    return SpawnBatch();
  }
  // Progressive: the new generation earns its share step by step (service_progressive.cc).
  if (config_.rollout.progressive && old) {
    if (!handover_->rollout) BeginStep(0);
    return;
  }
  Promote();
}

void Service::Promote() {
  Generation* gen = FindGen(handover_->new_gen);
  Generation* old = FindGen(handover_->old_gen);
  Pending done = std::move(*handover_);
  handover_.reset();
  gen->state = GenState::kLive;
  fatal_reason_.clear();
  stopped_ = false;
  HandoverResult result;
  result.promoted = true;
  result.kind = done.kind;
  result.version = gen->release.version;
  result.generation = gen->id;
  result.duration_s = std::chrono::duration<double>(clock_.Now() - done.started).count();
  if (done.rollout) result.steps = done.rollout->passed();
  if (old) {
    result.from_version = old->release.version;
    result.from_generation = old->id;
    if (done.kind != HandoverKind::kAutoRollback) previous_release_ = old->release;
    Emit(EventType::kDraining, old, 0, "generation " + std::to_string(old->id) + " drains");
    Drain(*old);  // with kernel steering, no stop signal before its queue is empty
  }
  SteerTraffic();  // every new connection to the new generation
  for (auto& w : gen->workers) WatchLiveness(*gen, *w);
  recycle_queue_.clear();
  ArmRecycleTimer();
  Emit(EventType::kPromoted, gen, 0, gen->release.version + " is live");
  RunHook("on_promoted", config_.hooks.on_promoted, gen, result.from_version, "");
  if (old && previous_release_ && done.kind != HandoverKind::kAutoRollback && config_.bake_time.count() > 0)
    StartBake(config_.bake_time);
  last_result_ = result;
  counters_.handovers_promoted++;
  counters_.last_handover_seconds = result.duration_s;
  if (io_.on_result) io_.on_result(gen->release, result);
  done.done(result);
}

void Service::SteerTraffic() {
  if (!io_.steering) return;
  std::vector<GenerationWeight> weights;
  if (progressive_running())
    weights = handover_->rollout->Weights();
  else if (const Generation* current = live())
    weights.push_back({current->id, 100});
  io_.steering->Route(weights);
}

void Service::FailHandover(const std::string& reason) {
  if (!handover_) return;
  Pending done = std::move(*handover_);
  handover_.reset();
  kickoff_.reset();
  Generation* gen = FindGen(done.new_gen);
  gen->reason = reason;
  HandoverResult result;
  result.kind = done.kind;
  result.version = gen->release.version;
  result.generation = gen->id;
  result.reason = reason;
  result.duration_s = std::chrono::duration<double>(clock_.Now() - done.started).count();
  if (done.rollout) result.steps = done.rollout->passed();
  if (const Generation* old = FindGen(done.old_gen)) {
    result.from_version = old->release.version;
    result.from_generation = old->id;
  }
  Emit(EventType::kFailed, gen, 0, reason);
  RunHook("on_failed", config_.hooks.on_failed, gen, result.from_version, reason);
  if (done.rollout) {
    // It had a share of new connections: those go back to the live generation, and it
    // finishes the requests it already has, as a replaced generation does, before its
    // stop signal. Stopping it at once would cut them (an operator's rollback of a
    // healthy release did).
    gen->after_drain = GenState::kFailed;
    SteerTraffic();
    Drain(*gen);
  } else {
    StopGeneration(*gen, GenState::kFailed);
  }
  RefillLive();  // rolling batches may have retired old workers; crashed ones await a restart
  last_result_ = result;
  counters_.handovers_failed++;
  counters_.last_handover_seconds = result.duration_s;
  if (io_.on_result) io_.on_result(gen->release, result);
  done.done(result);
}

void Service::OnWorkerExit(int64_t gen_id, int worker_id, int pid, const ExitInfo& exit) {
  Generation* gen = FindGen(gen_id);
  Worker* w = gen ? FindWorker(gen_id, worker_id) : nullptr;
  if (!w || w->pid != pid) return;
  w->pid = 0;
  w->last_exit = exit;
  w->readiness.reset();
  w->liveness.reset();
  w->timer.reset();
  Dispatch(*gen, *w, WorkerEvent::kExited);
}

WorkerStanding Service::StandingOf(const Generation& gen, const Worker& w) const {
  if (w.phase == WorkerPhase::kStopping) return WorkerStanding::kStopping;
  if (gen.state == GenState::kStarting && handover_ && handover_->new_gen == gen.id) return WorkerStanding::kStarting;
  if (gen.state == GenState::kLive) return WorkerStanding::kLive;
  return WorkerStanding::kStopping;
}

// Every worker event, through the handover table (handover_table.h).
void Service::Dispatch(Generation& gen, Worker& w, WorkerEvent event, const std::string& detail) {
  switch (CellFor(StandingOf(gen, w), event)) {
    case HandoverCell::kNothing: return;
    case HandoverCell::kStartingWorkerReady: return OnStartingWorkerReady(gen, w);
    case HandoverCell::kFailHandover: {
      std::string tail = w.StderrTail(5);
      return FailHandover("worker " + std::to_string(w.id) + " (pid " + std::to_string(w.pid) + ") " + detail +
                          (tail.empty() ? "" : "; last stderr: " + tail));
    }
    case HandoverCell::kStartingWorkerExit: return OnStartingWorkerExit(gen, w);
    case HandoverCell::kLiveWorkerReady: return OnLiveWorkerReady(gen, w);
    case HandoverCell::kLiveWorkerNotReady:
      if (w.replaces >= 0) return ReplacementFailed(gen, w, "was not ready: " + detail);
      return Emit(EventType::kNotReady, &gen, w.pid, detail);
    case HandoverCell::kLiveWorkerExit: return OnLiveWorkerExit(gen, w);
    case HandoverCell::kRestartDue: return OnRestartDue(gen, w);
    case HandoverCell::kStoppingWorkerExit: return OnStoppingWorkerExit(gen, w);
    case HandoverCell::kStopTimeout: return OnStopTimeout(gen, w);
  }
}

// A port batond picked was free when picked; another process may bind it before the
// worker does (a port is only a number until bound). A worker that exits before it is
// ready while such a port is held elsewhere lost that race, not its release's fault.
bool Service::LostPortRace(const Worker& w) const {
  if (!io_.port_free || w.port_races >= kMaxPortRaces) return false;
  if (w.probe_port && !io_.port_free(*w.probe_port)) return true;
  for (const auto& [listener, port] : w.backend_ports)
    if (!io_.port_free(port)) return true;
  return false;
}

void Service::OnStartingWorkerExit(Generation& gen, Worker& w) {
  w.phase = WorkerPhase::kExited;
  if (LostPortRace(w)) {
    w.port_races++;
    Emit(EventType::kRestarting, &gen, 0,
         "worker " + std::to_string(w.id) + " " + w.last_exit->Describe() +
             " and a port picked for it is held by another process: starting it again on fresh ports");
    Status s = SpawnWorker(gen, w);
    if (s.ok()) return;
    return FailHandover(s.message());
  }
  bool progressive = progressive_running();
  std::string reason =
      "worker " + std::to_string(w.id) + " " + w.last_exit->Describe() + (progressive ? "" : " before it was ready");
  std::string tail = w.StderrTail(5);
  if (!tail.empty()) reason += "; last stderr: " + tail;
  if (progressive) return (void)Abort(reason);
  FailHandover(reason);
}

void Service::OnLiveWorkerExit(Generation& gen, Worker& w) {
  w.phase = WorkerPhase::kExited;
  if (w.replaces >= 0) return ReplacementFailed(gen, w, w.last_exit->Describe() + " before it was ready");
  std::string what = "worker " + std::to_string(w.id) + " " + w.last_exit->Describe();
  std::string tail = w.StderrTail(3);
  Emit(EventType::kCrashed, &gen, 0, what + (tail.empty() ? "" : "; last stderr: " + tail));
  if (shutting_down_ || stopped_) return MaybeFinishStop();
  if (RollBackWithinBake(gen, "crashed")) return;
  if (!fatal_reason_.empty()) return;
  bool quick = clock_.Now() - w.started < config_.restart.reset_after;
  w.quick_failures = quick ? w.quick_failures + 1 : 1;
  if (w.quick_failures > config_.restart.max_failures) {
    fatal_reason_ = what + "; " + std::to_string(w.quick_failures) + " quick failures in a row" +
                    (tail.empty() ? "" : "; last stderr: " + tail);
    Emit(EventType::kFatal, &gen, 0, fatal_reason_);
    RunHook("on_fatal", config_.hooks.on_fatal, &gen, "", fatal_reason_);
    return;
  }
  Duration delay = RestartDelay(config_.restart, w.quick_failures);
  Emit(EventType::kRestarting, &gen, 0, "worker " + std::to_string(w.id) + " restarts in " + FormatDuration(delay));
  ScheduleRestart(gen, w, delay);
}

bool Service::RollBackWithinBake(Generation& gen, const std::string& what) {
  if (!bake_timer_ || !previous_release_ || handover_) return false;
  bake_timer_.reset();
  Release back = *previous_release_;
  Emit(EventType::kRollingBack, &gen, 0, what + " within bake_time; rolling back to " + back.version);
  Status s = Handover(back, HandoverKind::kAutoRollback, [this](const HandoverResult& r) {
    if (!r.promoted) spdlog::error("{}: automatic rollback failed: {}", name(), r.reason);
  });
  if (s.ok()) return true;
  spdlog::error("{}: automatic rollback refused: {}", name(), s.message());
  return false;
}

void Service::ScheduleRestart(Generation& gen, Worker& w, Duration delay) {
  w.phase = WorkerPhase::kBackoff;
  w.restart_due = clock_.Now() + delay;
  ArmWorkerTimer(gen, w, delay, WorkerEvent::kRestartDue);
}

void Service::ArmWorkerTimer(const Generation& gen, Worker& w, Duration delay, WorkerEvent event) {
  int64_t gen_id = gen.id;
  int worker_id = w.id;
  w.timer = clock_.After(delay, [this, gen_id, worker_id, event] {
    Generation* g = FindGen(gen_id);
    Worker* wk = FindWorker(gen_id, worker_id);
    if (g && wk) Dispatch(*g, *wk, event);
  });
}

void Service::StartBake(Duration remaining) {
  bake_due_ = clock_.Now() + remaining;
  bake_timer_ = clock_.After(remaining, [this] { OnBakeExpired(); });
}

void Service::OnStoppingWorkerExit(Generation& gen, Worker& w) {
  w.phase = WorkerPhase::kExited;
  if (w.superseded) ScheduleSweep();
  Emit(EventType::kExited, &gen, 0, "worker " + std::to_string(w.id) + " " + w.last_exit->Describe());
  RetireIfDone(gen);
  MaybeFinishStop();
}

void Service::OnStopTimeout(Generation& gen, Worker& w) {
  if (w.pid == 0) return;
  Emit(EventType::kKill, &gen, w.pid,
       "worker " + std::to_string(w.id) + " still running after stop.timeout " + FormatDuration(config_.stop.timeout) +
           "; sending SIGKILL to its process group");
  launcher_.SignalGroup(w.pid, SIGKILL);
}

void Service::OnRestartDue(Generation& gen, Worker& w) {
  if (w.phase != WorkerPhase::kBackoff) return;
  w.restarts++;
  counters_.restarts++;
  if (Status s = SpawnWorker(gen, w); !s.ok()) {
    Emit(EventType::kRestartFailed, &gen, 0, s.message());
    w.phase = WorkerPhase::kExited;
  }
}

void Service::OnBakeExpired() {
  bake_timer_.reset();
  if (const Generation* g = live())
    Emit(EventType::kBaked, g, 0, "no crash within bake_time " + FormatDuration(config_.bake_time));
}

void Service::OnReadiness(int64_t gen_id, int worker_id, int pid, Status status) {
  Generation* gen = FindGen(gen_id);
  Worker* w = FindWorker(gen_id, worker_id);
  if (!gen || !w || w->pid != pid) return;
  Dispatch(*gen, *w, status.ok() ? WorkerEvent::kReady : WorkerEvent::kNotReady, status.message());
}

void Service::MarkReady(Generation& gen, Worker& w) {
  w.phase = WorkerPhase::kReady;
  Emit(EventType::kReady, &gen, w.pid, "worker " + std::to_string(w.id) + " is ready");
}

}  // namespace baton
