// How a service, its generations and its events read in JSON (status, events, history).
#include "supervisor/base/duration.h"
#include "supervisor/base/json_writer.h"
#include "supervisor/handover/service.h"

namespace baton {

const char* GenStateName(GenState s) {
  switch (s) {
    case GenState::kStarting: return "starting";
    case GenState::kLive: return "live";
    case GenState::kDraining: return "draining";
    case GenState::kExited: return "exited";
    case GenState::kFailed: return "failed";
  }
  return "?";
}

const char* WorkerPhaseName(WorkerPhase p) {
  switch (p) {
    case WorkerPhase::kStarting: return "starting";
    case WorkerPhase::kReady: return "ready";
    case WorkerPhase::kStopping: return "stopping";
    case WorkerPhase::kBackoff: return "backoff";
    case WorkerPhase::kExited: return "exited";
  }
  return "?";
}

std::string Worker::StderrTail(size_t lines) const {
  std::string out;
  size_t start = stderr_tail.size() > lines ? stderr_tail.size() - lines : 0;
  for (size_t i = start; i < stderr_tail.size(); ++i) out += (out.empty() ? "" : " | ") + stderr_tail[i];
  return out;
}

size_t Generation::CountActive() const {
  size_t n = 0;
  for (const auto& w : workers) n += w->active();
  return n;
}

size_t Generation::CountRunning() const {
  size_t n = 0;
  for (const auto& w : workers) n += w->pid != 0;
  return n;
}

ServiceState Service::State() const {
  if (shutting_down_ || stop_done_) return ServiceState::kStopping;
  if (stopped_ && !handover_) return ServiceState::kStopped;
  if (!fatal_reason_.empty()) return ServiceState::kFatal;
  if (!waiting_for_.empty() && !handover_ && !live()) return ServiceState::kWaiting;
  if (handover_) return live() ? ServiceState::kUpgrading : ServiceState::kStarting;
  if (!live()) return ServiceState::kDown;
  return bake_timer_ ? ServiceState::kBaking : ServiceState::kRunning;
}

const char* ServiceStateName(ServiceState s) {
  switch (s) {
    case ServiceState::kStarting: return "starting";
    case ServiceState::kRunning: return "running";
    case ServiceState::kBaking: return "baking";
    case ServiceState::kUpgrading: return "upgrading";
    case ServiceState::kDown: return "down";
    case ServiceState::kFatal: return "fatal";
    case ServiceState::kStopping: return "stopping";
    case ServiceState::kStopped: return "stopped";
    case ServiceState::kWaiting: return "waiting";
  }
  return "?";
}

void Service::WriteGenerations(JsonWriter& out, const ProxiedConnections& proxied, const WorkerUsage& usage) const {
  out.BeginArray();
  for (const auto& g : gens_) {
    out.BeginObject();
    out.Key("id").Int(g->id);
    out.Key("version").String(g->release.version);
    out.Key("state").String(GenStateName(g->state));
    out.Key("started_at").Double(g->started_wall);
    if (!g->reason.empty()) out.Key("reason").String(g->reason);
    if (proxied) out.Key("proxied_connections").Uint(proxied(g->id));
    out.Key("workers").BeginArray();
    for (const auto& w : g->workers) {
      out.BeginObject();
      out.Key("id").Int(w->id);
      out.Key("pid").Int(w->pid);
      out.Key("state").String(WorkerPhaseName(w->phase));
      out.Key("restarts").Int(w->restarts);
      out.Key("started_at").Double(w->started_wall);
      if (w->last_exit) out.Key("last_exit").String(w->last_exit->Describe());
      if (!w->notify_status.empty()) out.Key("status").String(w->notify_status);
      if (w->probe_port) out.Key("probe_port").Int(*w->probe_port);
      if (!w->backend_ports.empty()) {
        out.Key("backend_ports").BeginObject();
        for (const auto& [name, port] : w->backend_ports) out.Key(name).Int(port);
        out.EndObject();
      }
      if (w->liveness) out.Key("health").Value(w->liveness->Describe());
      if (w->unhealthy) out.Key("unhealthy").Bool(true);
      if (w->replaces >= 0) {
        out.Key("replaces").BeginObject().Key("worker").Int(w->replaces);
        out.Key("cause").String(ReplaceCauseName(w->replace_cause)).EndObject();
      }
      if (w->replaced_by >= 0) out.Key("replaced_by").Int(w->replaced_by);
      if (w->rss) out.Key("rss_bytes").Uint(w->rss);
      if (auto u = usage && w->pid > 0 ? usage(w->pid) : std::nullopt) {
        out.Key("usage").BeginObject().Key("cpu_s").Double(u->cpu_s);
        out.Key("rss_bytes").Uint(u->rss_bytes).EndObject();
      }
      out.EndObject();
    }
    out.EndArray();
    out.EndObject();
  }
  out.EndArray();
}

nlohmann::json Service::Describe() const {
  nlohmann::json j = DescribeFields();
  JsonWriter gens;
  WriteGenerations(gens);
  j["generations"] = nlohmann::json::parse(gens.text());
  return j;
}

nlohmann::json Service::DescribeFields() const {
  nlohmann::json listeners = nlohmann::json::array();
  for (const auto& l : io_.listeners) listeners.push_back({{"name", l.name}, {"address", l.address}});
  const Generation* l = live();
  nlohmann::json j = {{"name", config_.name},
                      {"state", StateName()},
                      {"version", l ? nlohmann::json(l->release.version) : nlohmann::json(nullptr)},
                      {"replicas", config_.replicas},
                      {"recent_generations", nlohmann::json(retired_)},
                      {"listeners", std::move(listeners)}};
  if (handover_) {
    const Generation* g = nullptr;
    for (const auto& x : gens_)
      if (x->id == handover_->new_gen) g = x.get();
    j["handover"] = {{"kind", HandoverKindName(handover_->kind)},
                     {"generation", handover_->new_gen},
                     {"version", g ? g->release.version : ""}};
    if (progressive_running()) j["handover"]["progressive"] = DescribeProgress();
  }
  if (last_result_) j["last_handover"] = last_result_->ToJson();
  if (!fatal_reason_.empty()) j["fatal_reason"] = fatal_reason_;
  if (!waiting_for_.empty()) j["waiting_for"] = waiting_for_;
  if (previous_release_) j["previous_version"] = previous_release_->version;
  nlohmann::json stored = nlohmann::json::array();
  for (const auto& [name, fd] : fd_store_) stored.push_back(name);
  j["fd_store"] = std::move(stored);
  j["counters"] = CountersJson();
  return j;
}

// The status shows the counters, and a self-upgrade carries them, in this shape.
nlohmann::json Service::CountersJson() const {
  return {{"handovers_promoted", counters_.handovers_promoted},
          {"handovers_failed", counters_.handovers_failed},
          {"restarts", counters_.restarts},
          {"hook_failures", counters_.hook_failures},
          {"health_failures", counters_.health_failures},
          {"replacements", counters_.replacements},
          {"replace_failures", counters_.replace_failures},
          {"last_handover_seconds", counters_.last_handover_seconds}};
}

}  // namespace baton
