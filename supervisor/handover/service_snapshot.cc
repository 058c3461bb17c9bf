// Carrying a service over to a new batond program (self-upgrade): what it is running and
// where it stands, as JSON, and back. Only a quiet service is carried: one live
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

Json Service::Snapshot(std::vector<int>* keep) const {
  SteadyTime now = clock_.Now();
  Json s = {{"name", name()},
            {"next_generation", next_gen_id_},
            {"stopped", stopped_},
            {"fatal_reason", fatal_reason_},
            {"waiting_for", waiting_for_},
            {"counters",
             {{"handovers_promoted", counters_.handovers_promoted},
              {"handovers_failed", counters_.handovers_failed},
              {"restarts", counters_.restarts},
              {"hook_failures", counters_.hook_failures},
              {"health_failures", counters_.health_failures},
              {"replacements", counters_.replacements},
              {"replace_failures", counters_.replace_failures},
              {"last_handover_seconds", counters_.last_handover_seconds}}},
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
    Json workers = Json::array();
    for (const auto& w : gen->workers) {
      if (w->superseded) continue;
      Json j = {{"id", w->id},
                {"pid", w->pid},
                {"phase", WorkerPhaseName(w->phase)},
                {"started_wall", w->started_wall},
                {"restarts", w->restarts},
                {"quick_failures", w->quick_failures},
                {"notify_status", w->notify_status},
                {"backend_ports", w->backend_ports},
                {"stderr_tail", Json(w->stderr_tail)}};
      if (w->probe_port) j["probe_port"] = *w->probe_port;
      if (w->phase == WorkerPhase::kBackoff) j["restart_in_ms"] = RemainingMs(w->restart_due, now);
      workers.push_back(std::move(j));
    }
    s["live"] = {{"id", gen->id},
                 {"release", ReleaseToJson(gen->release)},
                 {"started_wall", gen->started_wall},
                 {"sockets", gen->sockets},  // kept open by the steering's own export
                 {"file_env", gen->file_env},
                 {"workers", std::move(workers)}};
  }
  return s;
}

Status Service::Restore(const Json& s) {
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
    if (Status st = RestoreLive(s["live"]); !st.ok()) return st;
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
Status Service::RestoreLive(const Json& l) {
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
  for (const auto& j : l.at("workers")) RestoreWorker(g, j);
  return Status::Ok();
}

void Service::RestoreWorker(Generation& g, const Json& j) {
  auto w = std::make_unique<Worker>();
  w->id = j.at("id").get<int>();
  g.next_worker_id = std::max(g.next_worker_id, w->id + 1);
  w->pid = j.at("pid").get<int>();
  w->started_wall = j.at("started_wall").get<double>();
  w->started = SteadyOf(w->started_wall);
  w->restarts = j.value("restarts", 0);
  w->quick_failures = j.value("quick_failures", 0);
  w->notify_status = j.value("notify_status", "");
  w->backend_ports = j.value("backend_ports", std::map<std::string, int>{});
  for (const auto& line : j.value("stderr_tail", Json::array())) w->stderr_tail.push_back(line.get<std::string>());
  if (j.contains("probe_port")) w->probe_port = j["probe_port"].get<int>();
  std::string phase = j.at("phase").get<std::string>();
  Worker& ref = *w;
  g.workers.push_back(std::move(w));
  if (phase == WorkerPhaseName(WorkerPhase::kBackoff))
    return ScheduleRestart(g, ref, std::chrono::milliseconds(j.value("restart_in_ms", int64_t{0})));
  if (phase != WorkerPhaseName(WorkerPhase::kReady) || ref.pid <= 0) {
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
