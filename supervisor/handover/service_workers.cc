// Service mechanics: spawning, stopping, draining and retiring workers and generations.
#include <sys/resource.h>

#include <algorithm>
#include <csignal>

#include "supervisor/base/duration.h"
#include "supervisor/base/log.h"
#include "supervisor/handover/service.h"
#include "supervisor/handover/launch_spec.h"

namespace baton {

namespace {
constexpr size_t kRetiredKept = 8;
constexpr size_t kStderrTailLines = 10;
}  // namespace

Result<LaunchSpec> Service::BuildLaunchSpec(const Release& release, const Generation* gen,
                                            std::optional<int> probe_port,
                                            const std::map<std::string, int>& backend_ports, std::vector<Probe>* probes,
                                            std::vector<Probe>* health_probes) const {
  WorkerInputs in{config_, release, {}, {}, {}, probe_port, backend_ports, io_.base_env, io_.notify_socket, {}};
  for (const auto& l : io_.listeners) in.listeners.push_back({l.name, l.fd, l.port});
  if (gen) {
    in.own_sockets = gen->sockets;
    in.file_env = gen->file_env;
  }
  for (const auto& [name, fd] : fd_store_) in.stored_fds.emplace_back(name, fd->get());
  return baton::BuildLaunchSpec(in, probes, health_probes);
}

ProcessEvents Service::WorkerEvents(int64_t gen_id, int worker_id, std::shared_ptr<int> pid) {
  ProcessEvents events;
  auto alive = alive_.token();
  events.on_line = [this, alive, gen_id, worker_id](OutputStream stream, std::string_view line) {
    if (!alive) return;
    Generation* g = FindGen(gen_id);
    Worker* w = FindWorker(gen_id, worker_id);
    if (!g || !w) return;
    if (io_.on_output) io_.on_output(*g, w->pid, stream, line);
    if (stream != OutputStream::kStderr) return;
    w->stderr_tail.emplace_back(line.substr(0, 500));
    if (w->stderr_tail.size() > kStderrTailLines) w->stderr_tail.pop_front();
  };
  events.on_exit = [this, alive, gen_id, worker_id, pid](const ExitInfo& exit) {
    if (alive) OnWorkerExit(gen_id, worker_id, *pid, exit);
  };
  return events;
}

Status Service::SpawnWorker(Generation& gen, Worker& w) {
  auto pick = [this]() {
    return io_.pick_probe_port ? io_.pick_probe_port() : Result<int>(Status::Failed("no free ports"));
  };
  w.probe_port.reset();
  if (NeedsProbePort(config_, gen.release)) {
    auto port = pick();
    if (!port.ok()) return port.status();
    w.probe_port = *port;
  }
  w.backend_ports.clear();  // a fresh port each start: the last process may still hold the old one
  for (const auto& l : config_.listeners)
    if (l.mode == ListenMode::kProxy) {
      auto port = pick();
      if (!port.ok()) return port.status();
      w.backend_ports[l.name] = *port;
    }
  std::vector<Probe> probes;
  auto spec = BuildLaunchSpec(gen.release, &gen, w.probe_port, w.backend_ports, &probes);
  if (!spec.ok()) return spec.status();
  spec->env.emplace_back("BATON_GENERATION", std::to_string(gen.id));

  // The pid is only known after Launch returns; the exit callback reads it from the worker.
  auto pid_slot = std::make_shared<int>(0);
  int64_t gen_id = gen.id;
  int worker_id = w.id;
  ProcessEvents events = WorkerEvents(gen_id, worker_id, pid_slot);
  auto pid = launcher_.Launch(*spec, std::move(events));
  if (!pid.ok()) return pid.status();
  *pid_slot = *pid;
  w.pid = *pid;
  w.phase = WorkerPhase::kStarting;
  w.started = clock_.Now();
  w.started_wall = clock_.WallSeconds();
  w.stderr_tail.clear();
  w.notify_status.clear();
  Emit(EventType::kSpawned, &gen, w.pid, "worker " + std::to_string(w.id) + " started: " + spec->argv[0]);
  int p = w.pid;
  w.readiness = std::make_unique<ReadinessCheck>(
      clock_, probes_, config_.ready, std::move(probes),
      [this, gen_id, worker_id, p](Status s) { OnReadiness(gen_id, worker_id, p, std::move(s)); });
  w.readiness->Start();
  return Status::Ok();
}

void Service::StopWorker(Generation& gen, Worker& w) {
  w.readiness.reset();
  w.liveness.reset();
  w.timer.reset();
  if (w.replaces >= 0) {  // stopped before it took over: the worker it was to replace stays
    if (Worker* old = FindWorker(gen.id, w.replaces)) old->replaced_by = -1;
    w.replaces = -1;
    w.superseded = true;
  }
  if (w.pid == 0) {
    w.phase = WorkerPhase::kExited;
    return;
  }
  if (w.phase == WorkerPhase::kStopping) return;
  w.phase = WorkerPhase::kStopping;
  if (config_.stop.signal_group)
    launcher_.SignalGroup(w.pid, config_.stop.signal);
  else
    launcher_.SignalMain(w.pid, config_.stop.signal);
  ArmWorkerTimer(gen, w, config_.stop.timeout, WorkerEvent::kStopTimeout);
}

// Proxy mode: the connections that keep a replaced generation from its stop signal. All
// of them; or, when its stop signal drains gracefully by itself, those not yet answered,
// which may still wait in the worker's own accept queue and would be reset by its close.
size_t Service::ConnectionsHolding(int64_t generation) const {
  if (!io_.proxied_connections) return 0;
  return io_.proxied_connections(generation, !config_.stop.wait_for_connections);
}

size_t Service::HeldFor(int64_t generation) const {
  return ConnectionsHolding(generation) + (Steered() ? io_.steering->Queued(generation) : 0);
}

bool Service::Steered() const {
  if (!io_.steering) return false;
  for (const auto& l : config_.listeners)
    if (l.mode == ListenMode::kKernel) return true;
  return false;
}

// The replaced generation keeps serving what was already routed to it, and only then gets
// the stop signal, or when stop.drain_timeout ends: in proxy mode the connections routed
// to it, until they close; with kernel steering the connections in its accept queues,
// until its workers have taken them (a server that closes its listener on the stop
// signal would otherwise leave them to be reset). Handshakes that chose its socket just
// before the switch land in its queue a moment later: the first look is a poll later.
void Service::Drain(Generation& old) {
  if (config_.hooks.before_drain.empty()) return DrainNow(old);
  // Receives no new connection from now on; its stop signal waits for the hook (at most
  // hooks.timeout), which may take the host out of a registry first.
  old.state = GenState::kDraining;
  old.stop_started = clock_.Now();
  int64_t id = old.id;
  std::string next = live() ? live()->release.version : "";
  RunHook("before_drain", config_.hooks.before_drain, &old, "", next.empty() ? "" : "replaced by " + next,
          [this, id](Status) {
            Generation* g = FindGen(id);
            if (g && g->state == GenState::kDraining) DrainNow(*g);
          });
}

void Service::DrainNow(Generation& old) {
  size_t open = ConnectionsHolding(old.id);
  if (open == 0 && !Steered()) return StopGeneration(old, old.after_drain);
  old.state = GenState::kDraining;
  old.stop_started = clock_.Now();
  if (open > 0)
    Emit(EventType::kProxyDrain, &old, 0,
         std::to_string(open) + " proxied connection(s) still open; stop signal when they close or after " +
             FormatDuration(config_.stop.drain_timeout));
  int64_t id = old.id;
  old.drain_timer = clock_.After(config_.stop.drain_timeout, [this, id] {
    Generation* g = FindGen(id);
    if (!g) return;
    Emit(EventType::kDrainTimeout, g, 0, "connections still open or queued after stop.drain_timeout; stopping");
    g->drain_timer.reset();
    g->queue_poll.reset();
    StopGeneration(*g, g->after_drain);
  });
  if (Steered()) WatchDrain(id);
}

// Kernel steering: nothing announces an accept queue emptying, so it is looked at every
// kQueuePoll while a replaced generation drains (only then: an idle batond stays idle).
void Service::WatchDrain(int64_t gen_id) {
  static constexpr Duration kQueuePoll = std::chrono::milliseconds(10);
  Generation* g = FindGen(gen_id);
  g->queue_poll = clock_.After(kQueuePoll, [this, gen_id] {
    Generation* g = FindGen(gen_id);
    if (!g || g->state != GenState::kDraining || !g->drain_timer) return;
    if (HeldFor(gen_id) > 0) return WatchDrain(gen_id);
    g->drain_timer.reset();
    g->queue_poll.reset();
    StopGeneration(*g, g->after_drain);
  });
}

void Service::OnProxyConnectionsChanged(int64_t generation) {
  if (progressive_running() && generation == handover_->new_gen) {
    if (auto breach = handover_->rollout->Breach(TrafficOf(generation), false)) (void)Abort(*breach);
    return;
  }
  Generation* g = FindGen(generation);
  if (!g || g->state != GenState::kDraining || !g->drain_timer || g->queue_poll || HeldFor(generation) > 0) return;
  g->drain_timer.reset();
  StopGeneration(*g, g->after_drain);
}

std::optional<std::pair<int64_t, int>> Service::Backend(const std::string& listener, int64_t generation, bool commit) {
  const Generation* gen = nullptr;
  for (const auto& g : gens_)
    if (generation == 0 ? g->state == GenState::kLive : g->id == generation) gen = g.get();
  if (generation == 0 && progressive_running() && commit && handover_->rollout->TakeForNew())
    if (auto to_new = Backend(listener, handover_->new_gen)) return to_new;
  if (!gen) return std::nullopt;
  // A worker whose health check gave up on it gets connections only when no other can.
  size_t n = gen->workers.size();
  for (bool take_unhealthy : {false, true})
    for (size_t i = 0; i < n; ++i) {
      const Worker& w = *gen->workers[(round_robin_ + i) % n];
      auto port = w.backend_ports.find(listener);
      if (w.phase != WorkerPhase::kReady || port == w.backend_ports.end() || w.unhealthy != take_unhealthy) continue;
      if (commit) round_robin_ = (round_robin_ + i + 1) % n;
      return std::make_pair(gen->id, port->second);
    }
  return std::nullopt;
}

void Service::StopGeneration(Generation& gen, GenState final_state) {
  gen.drain_timer.reset();
  gen.queue_poll.reset();
  if (io_.steering) io_.steering->Release(gen.id);
  gen.state = final_state;
  if (!gen.stop_started) gen.stop_started = clock_.Now();
  for (auto& w : gen.workers) StopWorker(gen, *w);
  RetireIfDone(gen);
}

// Brings the live generation back to `replicas` active workers after a failed handover:
// replaces workers a rolling handover retired and crashed workers awaiting the outcome.
void Service::RefillLive() {
  Generation* gen = MutableLive();
  if (!gen || shutting_down_ || stopped_ || !fatal_reason_.empty()) return;
  for (auto& w : gen->workers)
    if (w->phase == WorkerPhase::kExited && !w->superseded &&
        gen->CountActive() < static_cast<size_t>(config_.replicas)) {
      w->restarts++;
      counters_.restarts++;
      if (Status s = SpawnWorker(*gen, *w); !s.ok()) Emit(EventType::kRestartFailed, gen, 0, s.message());
    }
  while (gen->CountActive() < static_cast<size_t>(config_.replicas)) {
    auto w = std::make_unique<Worker>();
    w->id = gen->next_worker_id++;
    Worker& ref = *w;
    gen->workers.push_back(std::move(w));
    if (Status s = SpawnWorker(*gen, ref); !s.ok()) {
      Emit(EventType::kRestartFailed, gen, 0, s.message());
      ref.phase = WorkerPhase::kExited;
      return;
    }
  }
}

void Service::RetireIfDone(Generation& gen) {
  if (gen.state != GenState::kDraining && gen.state != GenState::kFailed) return;
  if (gen.CountRunning() > 0) return;
  if (gen.state == GenState::kDraining) {
    gen.state = GenState::kExited;
    double took = std::chrono::duration<double>(clock_.Now() - gen.stop_started.value_or(clock_.Now())).count();
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", took);
    Emit(EventType::kDrained, &gen, 0, "generation " + std::to_string(gen.id) + " drained in " + secs + "s", took);
  }
  nlohmann::json record = {{"id", gen.id},
                           {"version", gen.release.version},
                           {"state", GenStateName(gen.state)},
                           {"started_at", gen.started_wall},
                           {"ended_at", clock_.WallSeconds()}};
  if (!gen.reason.empty()) record["reason"] = gen.reason;
  retired_.push_front(std::move(record));
  if (retired_.size() > kRetiredKept) retired_.pop_back();
  Emit(EventType::kGenerationExited, &gen, 0, "generation " + std::to_string(gen.id) + " has no processes left");
  if (io_.steering) io_.steering->Retire(gen.id);
  ScheduleSweep();
}

void Service::Emit(EventType type, const Generation* gen, int pid, const std::string& message,
                   std::optional<double> duration_s) {
  ServiceEvent e{type, config_.name, gen ? gen->id : 0,    gen ? gen->release.version : "",
                 pid,  message,      clock_.WallSeconds(), duration_s};
  if (IsTrouble(type))
    spdlog::warn("{} gen {} ({}): {}: {}", e.service, e.generation, e.version, EventTypeName(type), message);
  else
    spdlog::info("{} gen {} ({}): {}{}{}", e.service, e.generation, e.version, EventTypeName(type),
                 message.empty() ? "" : ": ", message);
  if (sink_) sink_(e);
}

Generation* Service::FindGen(int64_t id) {
  for (auto& g : gens_)
    if (g->id == id) return g.get();
  return nullptr;
}

Worker* Service::FindWorker(int64_t gen_id, int worker_id) {
  Generation* g = FindGen(gen_id);
  if (!g) return nullptr;
  for (auto& w : g->workers)
    if (w->id == worker_id) return w.get();
  return nullptr;
}

const Generation* Service::pending() const {
  if (!handover_) return nullptr;
  for (const auto& g : gens_)
    if (g->id == handover_->new_gen) return g.get();
  return nullptr;
}

const Generation* Service::live() const {
  for (const auto& g : gens_)
    if (g->state == GenState::kLive) return g.get();
  return nullptr;
}

Generation* Service::MutableLive() { return const_cast<Generation*>(live()); }

bool Service::OwnsPid(int pid) const {
  for (const auto& g : gens_)
    for (const auto& w : g->workers)
      if (w->pid == pid) return true;
  return false;
}

}  // namespace baton
