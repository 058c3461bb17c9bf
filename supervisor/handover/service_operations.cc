// A service's day-to-day operations outside handovers: stop and shutdown, scale, signal,
// a new configuration, and what workers say over the notify socket (STATUS=, FDSTORE=1).
#include "supervisor/handover/service.h"

#include <csignal>

#include "supervisor/base/duration.h"
#include "supervisor/base/log.h"
#include "supervisor/handover/backoff.h"

namespace baton {

void Service::Shutdown(std::function<void()> done) {
  shutting_down_ = true;
  StopAll(std::move(done));
}

Status Service::Stop(std::function<void()> done) {
  if (shutting_down_) return Status::FailedPrecondition("batond is shutting down");
  if (stop_done_) return Status::Conflict("service '" + name() + "' is already stopping");
  stopped_ = true;
  Emit(EventType::kStopping, live(), 0, "stopped by the operator");
  StopAll(std::move(done));
  return Status::Ok();
}

void Service::StopAll(std::function<void()> done) {
  stop_done_ = std::move(done);
  FailHandover(shutting_down_ ? "batond is shutting down" : "the service was stopped");
  bake_timer_.reset();
  recycle_timer_.reset();
  recycle_queue_.clear();
  for (auto& gen : gens_) {
    if (gen->state == GenState::kLive || gen->state == GenState::kStarting) StopGeneration(*gen, GenState::kDraining);
    for (auto& w : gen->workers)
      if (w->phase == WorkerPhase::kBackoff) StopWorker(*gen, *w);
  }
  SteerTraffic();  // nothing is live: clients wait in the first socket for the next start
  kickoff_ = clock_.After(Duration(0), [this] { MaybeFinishStop(); });
}

void Service::MaybeFinishStop() {
  if (!stop_done_) return;
  for (const auto& gen : gens_)
    if (gen->CountRunning() > 0) return;
  if (!shutting_down_) Emit(EventType::kStopped, nullptr, 0, "every worker has exited");
  std::exchange(stop_done_, nullptr)();
}

Status Service::Scale(int replicas) {
  if (replicas < 1 || replicas > 1024) return Status::InvalidArgument("replicas must be between 1 and 1024");
  if (handover_) return Status::Conflict("a handover of service '" + name() + "' is in progress; scale after it");
  if (shutting_down_ || stop_done_) return Status::FailedPrecondition("service '" + name() + "' is stopping");
  int before = config_.replicas;
  config_.replicas = replicas;
  if (Generation* gen = MutableLive()) {
    for (auto it = gen->workers.rbegin();
         it != gen->workers.rend() && gen->CountActive() > static_cast<size_t>(replicas); ++it)
      if ((*it)->active()) StopWorker(*gen, **it);
    RefillLive();
  }
  Emit(EventType::kScaled, live(), 0, "replicas " + std::to_string(before) + " -> " + std::to_string(replicas));
  return Status::Ok();
}

void Service::Reconfigure(const ServiceConfig& config, std::vector<ListenerRef> listeners) {
  bool health_changed = !(config.health == config_.health);
  bool recycle_changed = !(config.recycle == config_.recycle);
  config_ = config;
  io_.listeners = std::move(listeners);
  if (Generation* gen = MutableLive(); gen && health_changed)
    for (auto& w : gen->workers) WatchLiveness(*gen, *w);
  if (recycle_changed && live()) ArmRecycleTimer();
}

int Service::Signal(int sig) {
  int n = 0;
  for (auto& gen : gens_)
    for (auto& w : gen->workers)
      if (w->pid) {
        launcher_.SignalGroup(w->pid, sig);
        ++n;
      }
  return n;
}

void Service::OnNotify(int worker_pid, const NotifyMessage& msg) {
  for (auto& gen : gens_)
    for (auto& w : gen->workers) {
      if (w->pid != worker_pid) continue;
      if (const std::string* status = msg.status()) w->notify_status = status->substr(0, 200);
      if (msg.Is("FDSTORE", "1") || msg.Is("FDSTOREREMOVE", "1")) StoreFds(*gen, worker_pid, msg);
      if (w->liveness && msg.Is("WATCHDOG", "1")) w->liveness->OnWatchdog();
      // Each of these may add workers to the generation (a replacement, the next rolling
      // batch): `w` is not touched afterwards.
      if (w->liveness && msg.Is("WATCHDOG", "trigger")) return w->liveness->OnWatchdogTrigger();
      if (msg.ready() && w->readiness) w->readiness->OnNotifyReady();
      return;
    }
}

void Service::StoreFds(const Generation& gen, int pid, const NotifyMessage& msg) {
  auto name_it = msg.fields.find("FDNAME");
  std::string name = name_it == msg.fields.end() || name_it->second.empty() ? "stored" : name_it->second;
  if (name.find(':') != std::string::npos || name.size() > 255) {
    Emit(EventType::kFdStore, &gen, pid, "FDNAME '" + name.substr(0, 64) + "' refused: no ':' and at most 255 bytes");
    return;
  }
  std::erase_if(fd_store_, [&](const auto& e) { return e.first == name; });
  if (msg.Is("FDSTOREREMOVE", "1")) {
    Emit(EventType::kFdStore, &gen, pid, "removed '" + name + "'");
    return;
  }
  size_t kept = 0;
  for (const auto& fd : msg.fds) {
    if (fd_store_.size() >= static_cast<size_t>(config_.fd_store_max)) {
      Emit(EventType::kFdStore, &gen, pid,
           "store full (fd_store_max " + std::to_string(config_.fd_store_max) + "): '" + name + "' dropped");
      break;
    }
    fd_store_.emplace_back(name, fd);
    ++kept;
  }
  if (kept)
    Emit(EventType::kFdStore, &gen, pid, "keeping " + std::to_string(kept) + " descriptor(s) as '" + name + "'");
}

}  // namespace baton
