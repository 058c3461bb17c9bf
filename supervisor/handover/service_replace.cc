// Replacing a worker of the live generation without a drop: after a failed health check
// (liveness), for max_memory or max_age, or at the operator's word (recycle). A fresh
// worker of the same release starts beside the old one and takes its place once it is
// ready; only then does the old one get its stop signal (SIGKILL after stop.timeout).
#include "supervisor/base/duration.h"
#include "supervisor/base/log.h"
#include "supervisor/handover/recycle_policy.h"
#include "supervisor/handover/service.h"

namespace baton {

const char* ReplaceCauseName(ReplaceCause c) {
  switch (c) {
    case ReplaceCause::kHealth: return "health";
    case ReplaceCause::kMemory: return "memory";
    case ReplaceCause::kAge: return "age";
    case ReplaceCause::kOperator: return "operator";
  }
  return "?";
}

namespace {

std::string WorkerName(const Worker& w) {
  return "worker " + std::to_string(w.id) + (w.pid ? " (pid " + std::to_string(w.pid) + ")" : "");
}

}  // namespace

// A ready worker of the live generation is watched from now on, with [health].
void Service::WatchLiveness(Generation& gen, Worker& w) {
  w.liveness.reset();
  w.unhealthy = false;
  if (!config_.health.enabled() || gen.state != GenState::kLive || w.phase != WorkerPhase::kReady) return;
  std::vector<Probe> probes;
  auto spec = BuildLaunchSpec(gen.release, &gen, w.probe_port, w.backend_ports, nullptr, &probes);
  if (!spec.ok()) {
    Emit(EventType::kUnhealthy, &gen, w.pid,
         WorkerName(w) + ": its health probes cannot be built: " + spec.status().message());
    return;
  }
  int64_t gen_id = gen.id;
  int worker_id = w.id;
  int pid = w.pid;
  w.liveness = std::make_unique<LivenessCheck>(
      clock_, probes_, config_.health, std::move(probes),
      [this, gen_id, worker_id, pid](const std::string& reason) { OnUnhealthy(gen_id, worker_id, pid, reason); },
      [this](const Status& round) { counters_.health_failures += !round.ok(); });
  w.liveness->Start();
}

void Service::OnUnhealthy(int64_t gen_id, int worker_id, int pid, const std::string& reason) {
  Generation* gen = FindGen(gen_id);
  Worker* w = FindWorker(gen_id, worker_id);
  if (!gen || !w || w->pid != pid || gen->state != GenState::kLive) return;
  w->unhealthy = true;  // proxy mode: new connections go to its healthy siblings
  Emit(EventType::kUnhealthy, gen, pid, WorkerName(*w) + ": " + reason);
  if (RollBackWithinBake(*gen, WorkerName(*w) + " failed its health check")) return;
  if (w->replaced_by >= 0 || w->phase != WorkerPhase::kReady) return;
  (void)Replace(*gen, *w, ReplaceCause::kHealth, reason);
}

Status Service::Replace(Generation& gen, Worker& w, ReplaceCause cause, const std::string& why) {
  if (shutting_down_ || stopped_ || stop_done_)
    return Status::FailedPrecondition("service '" + name() + "' is stopping");
  if (gen.state != GenState::kLive)
    return Status::FailedPrecondition("only the live generation's workers are replaced");
  if (w.replaced_by >= 0) return Status::Ok();
  auto fresh = std::make_unique<Worker>();
  fresh->id = gen.next_worker_id++;
  fresh->replaces = w.id;
  fresh->replace_cause = cause;
  fresh->replace_started = clock_.Now();
  Worker& ref = *fresh;
  gen.workers.push_back(std::move(fresh));
  w.replaced_by = ref.id;
  Emit(EventType::kReplacing, &gen, w.pid,
       WorkerName(w) + " is replaced by worker " + std::to_string(ref.id) + " (" + ReplaceCauseName(cause) +
           "): " + why);
  if (Status s = SpawnWorker(gen, ref); !s.ok()) {
    ReplacementFailed(gen, ref, s.message());
    return s;
  }
  return Status::Ok();
}

// A worker of the live generation passed its readiness checks: a restarted one, one a
// scale added, or a replacement, which now takes over.
void Service::OnLiveWorkerReady(Generation& gen, Worker& w) {
  MarkReady(gen, w);
  WatchLiveness(gen, w);
  if (w.replaces >= 0) TakeOver(gen, w);
}

void Service::TakeOver(Generation& gen, Worker& replacement) {
  Worker* old = FindWorker(gen.id, replacement.replaces);
  ReplaceCause cause = replacement.replace_cause;
  double took = std::chrono::duration<double>(clock_.Now() - replacement.replace_started).count();
  replacement.replaces = -1;
  counters_.replacements[ReplaceCauseName(cause)]++;
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3f", took);
  std::string what = "worker " + std::to_string(replacement.id) + " (pid " + std::to_string(replacement.pid) +
                     ") is ready after " + secs + "s and takes over";
  if (old) {
    what += " from " + WorkerName(*old) + ", which gets its stop signal";
    old->replaced_by = -1;
    old->superseded = true;
    StopWorker(gen, *old);
    if (old->phase == WorkerPhase::kExited) ScheduleSweep();
  }
  Emit(EventType::kReplaced, &gen, replacement.pid, what, took);
  if (io_.on_replaced) io_.on_replaced(gen, cause);
  NextRecycle();
}

// The replacement did not get ready (it exited, failed its checks, or could not start):
// the worker it was to replace carries on, and is reported again if it is still unwell.
void Service::ReplacementFailed(Generation& gen, Worker& replacement, const std::string& why) {
  counters_.replace_failures++;
  int old_id = std::exchange(replacement.replaces, -1);
  replacement.superseded = true;
  StopWorker(gen, replacement);
  Worker* old = FindWorker(gen.id, old_id);
  if (old) old->replaced_by = -1;
  if (replacement.replace_cause != ReplaceCause::kHealth)
    recycle_hold_until_ = clock_.Now() + config_.restart.max_backoff;
  Emit(EventType::kReplaceFailed, &gen, 0,
       "worker " + std::to_string(replacement.id) + ", started to replace worker " + std::to_string(old_id) + ", " +
           why + (old ? "; worker " + std::to_string(old_id) + " carries on" : ""));
  if (replacement.phase == WorkerPhase::kExited) ScheduleSweep();
  NextRecycle();
}

bool Service::ReplacementInFlight(const Generation& gen) const {
  for (const auto& w : gen.workers)
    if (w->replaces >= 0) return true;
  return false;
}

Result<int> Service::Recycle() {
  if (handover_) return Status::Conflict("a handover of service '" + name() + "' is in progress; recycle after it");
  if (shutting_down_ || stop_done_ || stopped_)
    return Status::FailedPrecondition("service '" + name() + "' is stopped");
  Generation* gen = MutableLive();
  if (!gen) return Status::FailedPrecondition("service '" + name() + "' has no live generation");
  if (!recycle_queue_.empty()) return Status::Conflict("service '" + name() + "' is already being recycled");
  for (const auto& w : gen->workers)
    if (w->phase == WorkerPhase::kReady && !w->superseded) recycle_queue_.push_back(w->id);
  int count = static_cast<int>(recycle_queue_.size());
  NextRecycle();
  return count;
}

// One replacement at a time, and none while a handover runs (a handover started since
// the operator asked drops what is left: the new generation is fresh throughout).
void Service::NextRecycle() {
  Generation* gen = MutableLive();
  if (handover_ || !gen || shutting_down_ || stopped_ || stop_done_) {
    recycle_queue_.clear();
    return;
  }
  if (ReplacementInFlight(*gen)) return;
  while (!recycle_queue_.empty()) {
    int id = recycle_queue_.front();
    recycle_queue_.pop_front();
    Worker* w = FindWorker(gen->id, id);
    if (!w || w->phase != WorkerPhase::kReady || w->superseded || w->replaced_by >= 0) continue;
    // A replacement that cannot start has already moved on to the next (ReplacementFailed).
    (void)Replace(*gen, *w, ReplaceCause::kOperator, "recycled by the operator");
    return;
  }
  if (!config_.recycle.enabled() || clock_.Now() < recycle_hold_until_) return;
  std::vector<WorkerSample> samples;
  for (auto& w : gen->workers) {
    if (w->phase != WorkerPhase::kReady || w->superseded) continue;
    WorkerSample s{w->id, std::chrono::duration_cast<Duration>(clock_.Now() - w->started), std::nullopt};
    if (config_.recycle.max_memory > 0 && io_.group_rss)
      if (auto rss = io_.group_rss(w->pid); rss.ok()) {
        w->rss = *rss;
        s.rss = *rss;
      }
    samples.push_back(s);
  }
  if (auto choice = ChooseRecycle(config_.recycle, samples))
    if (Worker* w = FindWorker(gen->id, choice->worker_id)) (void)Replace(*gen, *w, choice->cause, choice->why);
}

void Service::ArmRecycleTimer() {
  if (!config_.recycle.enabled()) {
    recycle_timer_.reset();
    return;
  }
  recycle_timer_ = clock_.After(config_.recycle.interval, [this] {
    NextRecycle();
    ArmRecycleTimer();
  });
}

// Exited generations and replaced workers are erased from the loop: callers up the stack
// may still hold references to them.
void Service::ScheduleSweep() {
  if (sweep_) return;
  sweep_ = clock_.After(Duration(0), [this] {
    for (auto& g : gens_) std::erase_if(g->workers, [](const auto& w) { return w->superseded && w->pid == 0; });
    std::erase_if(gens_, [](const auto& g) {
      return g->CountRunning() == 0 && (g->state == GenState::kExited || g->state == GenState::kFailed);
    });
    sweep_.reset();
  });
}

}  // namespace baton
