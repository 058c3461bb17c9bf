// Carrying a service over to a new batond program (self-upgrade): what it is running and
// where it stands (ServiceSnapshot), and back. Only a quiet service is carried: one live
// generation, no handover, no drain, every worker ready or waiting to restart.
#include "supervisor/handover/service.h"

namespace baton {

namespace {

using Json = nlohmann::json;

int64_t RemainingMs(SteadyTime due, SteadyTime now) {
  return std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count());
}

}  // namespace

Status Service::CheckQuiet() const {
  if (shutting_down_) return Status::FailedPrecondition("service '" + name() + "' is shutting down");
  if (stop_done_) return Status::Conflict("service '" + name() + "' is stopping");
  if (handover_)
    return Status::Conflict("service '" + name() + "': a " + HandoverKindName(handover_->kind) + " (generation " +
                            std::to_string(handover_->new_gen) + ") is in progress");
  for (const auto& gen : gens_) {
    if (gen->state != GenState::kLive)
      return Status::Conflict("service '" + name() + "': generation " + std::to_string(gen->id) + " is " +
                              GenStateName(gen->state));
    for (const auto& w : gen->workers)
      if (w->phase == WorkerPhase::kStarting || w->phase == WorkerPhase::kStopping)
        return Status::Conflict("service '" + name() + "': worker " + std::to_string(w->id) + " of generation " +
                                std::to_string(gen->id) + " is " + WorkerPhaseName(w->phase));
  }
  return Status::Ok();
}

ServiceSnapshot Service::Snapshot(std::vector<int>* keep) const {
  SteadyTime now = clock_.Now();
  ServiceSnapshot snapshot;
  Json& s = snapshot.fields;
  s = {{"name", name()},
       {"next_generation", next_gen_id_},
       {"stopped", stopped_},
       {"fatal_reason", fatal_reason_},
       {"waiting_for", waiting_for_},
       {"counters", CountersJson()},
       {"recent_generations", Json(retired_)},
       {"fd_store", Json::array()}};
  if (previous_release_) s["previous_release"] = ReleaseToJson(*previous_release_);
  if (last_result_) s["last_handover"] = last_result_->ToJson();
  if (bake_timer_) s["bake_remaining_ms"] = RemainingMs(bake_due_, now);
  for (const auto& [stored_name, fd] : fd_store_) {
    keep->push_back(fd->get());
    s["fd_store"].push_back({{"name", stored_name}, {"fd", fd->get()}});
  }
  if (const Generation* gen = live()) {
    snapshot.workers.reserve(gen->workers.size());
    for (const auto& w : gen->workers) {
      if (w->superseded) continue;
      CarriedWorker& c = snapshot.workers.emplace_back();
      c.id = w->id;
      c.pid = w->pid;
      c.phase = WorkerPhaseName(w->phase);
      c.started_wall = w->started_wall;
      c.restarts = w->restarts;
      c.quick_failures = w->quick_failures;
      c.notify_status = w->notify_status;
      c.backend_ports = w->backend_ports;
      c.stderr_tail.assign(w->stderr_tail.begin(), w->stderr_tail.end());
      c.probe_port = w->probe_port;
      if (w->phase == WorkerPhase::kBackoff) c.restart_in_ms = RemainingMs(w->restart_due, now);
    }
    s["live"] = {{"id", gen->id},
                 {"release", ReleaseToJson(gen->release)},
                 {"started_wall", gen->started_wall},
                 {"sockets", gen->sockets},  // kept open by the steering's own export
                 {"file_env", gen->file_env}};
  }
  return snapshot;
}

Status Service::Restore(const ServiceSnapshot& snapshot) {
  const Json& s = snapshot.fields;
  if (!gens_.empty() || handover_) return Status::FailedPrecondition("service '" + name() + "' is already running");
  try {
    next_gen_id_ = std::max(next_gen_id_, s.at("next_generation").get<int64_t>());
    stopped_ = s.value("stopped", false);
    fatal_reason_ = s.value("fatal_reason", "");
    waiting_for_ = s.value("waiting_for", std::vector<std::string>{});
    const Json& c = s.at("counters");
    counters_.handovers_promoted = c.value("handovers_promoted", uint64_t{0});
    counters_.handovers_failed = c.value("handovers_failed", uint64_t{0});
    counters_.restarts = c.value("restarts", uint64_t{0});
    counters_.hook_failures = c.value("hook_failures", uint64_t{0});
    counters_.health_failures = c.value("health_failures", uint64_t{0});
    counters_.replacements = c.value("replacements", std::map<std::string, uint64_t>{});
    counters_.replace_failures = c.value("replace_failures", uint64_t{0});
    counters_.last_handover_seconds = c.value("last_handover_seconds", 0.0);
    for (const auto& r : s.value("recent_generations", Json::array())) retired_.push_back(r);
    if (s.contains("previous_release")) previous_release_ = ReleaseFromJson(s["previous_release"]);
    if (s.contains("last_handover")) {
      auto last = HandoverResult::FromJson(s["last_handover"]);
      if (!last.ok()) return last.status();
      last_result_ = *last;
    }
    for (const auto& e : s.at("fd_store"))
      fd_store_.emplace_back(e.at("name").get<std::string>(), std::make_shared<UniqueFd>(e.at("fd").get<int>()));
    if (!s.contains("live")) return Status::Ok();
    if (Status st = RestoreLive(s["live"], snapshot.workers); !st.ok()) return st;
    if (s.contains("bake_remaining_ms")) StartBake(std::chrono::milliseconds(s["bake_remaining_ms"].get<int64_t>()));
    SteerTraffic();
    ArmRecycleTimer();
  } catch (const Json::exception& e) {
    return Status::InvalidArgument("service '" + name() + "': " + e.what());
  }
  return Status::Ok();
}

// A steady time point for a wall-clock time of the previous program.
SteadyTime Service::SteadyOf(double wall_then) const {
  double wall = clock_.WallSeconds();
  return clock_.Now() -
         std::chrono::duration_cast<Duration>(std::chrono::duration<double>(std::max(0.0, wall - wall_then)));
}

// The live generation and its workers: a ready worker is taken over where it runs, one
// waiting to restart keeps its backoff, and one that cannot be taken over restarts.
Status Service::RestoreLive(const Json& l, const std::vector<CarriedWorker>& workers) {
  auto release = ReleaseFromJson(l.at("release"));
  if (!release) return Status::InvalidArgument("service '" + name() + "': live generation without a release");
  auto gen = std::make_unique<Generation>();
  gen->id = l.at("id").get<int64_t>();
  gen->release = *release;
  gen->state = GenState::kLive;
  gen->started_wall = l.at("started_wall").get<double>();
  gen->started = SteadyOf(gen->started_wall);
  gen->sockets = l.value("sockets", std::map<std::string, int>{});
  gen->file_env = l.value("file_env", std::vector<std::pair<std::string, std::string>>{});
  Generation& g = *gen;
  gens_.push_back(std::move(gen));
  for (const auto& w : workers) RestoreWorker(g, w);
  return Status::Ok();
}

void Service::RestoreWorker(Generation& g, const CarriedWorker& c) {
  auto w = std::make_unique<Worker>();
  w->id = c.id;
  g.next_worker_id = std::max(g.next_worker_id, w->id + 1);
  w->pid = c.pid;
  w->started_wall = c.started_wall;
  w->started = SteadyOf(w->started_wall);
  w->restarts = c.restarts;
  w->quick_failures = c.quick_failures;
  w->notify_status = c.notify_status;
  w->backend_ports = c.backend_ports;
  w->stderr_tail.assign(c.stderr_tail.begin(), c.stderr_tail.end());
  w->probe_port = c.probe_port;
  Worker& ref = *w;
  g.workers.push_back(std::move(w));
  if (c.phase == WorkerPhaseName(WorkerPhase::kBackoff))
    return ScheduleRestart(g, ref, std::chrono::milliseconds(c.restart_in_ms.value_or(0)));
  if (c.phase != WorkerPhaseName(WorkerPhase::kReady) || ref.pid <= 0) {
    ref.phase = WorkerPhase::kExited;  // e.g. a fatal service's last crashed worker
    ref.pid = 0;
    return;
  }
  ref.phase = WorkerPhase::kReady;
  Status st = launcher_.Reattach(ref.pid, WorkerEvents(g.id, ref.id, std::make_shared<int>(ref.pid)));
  if (!st.ok()) {
    Emit(EventType::kCrashed, &g, ref.pid,
         "worker " + std::to_string(ref.id) + " could not be taken over: " + st.message());
    ref.pid = 0;
    ScheduleRestart(g, ref, Duration(0));
    return;
  }
  WatchLiveness(g, ref);
}

}  // namespace baton
