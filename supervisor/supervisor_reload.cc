// Supervisor::Reload: re-read the config file and apply what changed, or change nothing.
//
// Listeners whose address did not change keep their socket (a dup of the same open
// socket), so their accept queue is never interrupted. New listeners are bound before
// anything is applied: if one cannot be bound, the reload is rejected whole.
#include <fcntl.h>

#include <array>

#include <boost/asio/post.hpp>

#include "supervisor/base/json_text.h"
#include "supervisor/base/log.h"
#include "supervisor/config/reload_plan.h"
#include "supervisor/supervisor.h"

namespace baton {

Result<nlohmann::json> Supervisor::Reload() {
  if (stopping_) return Status::FailedPrecondition("batond is stopping");
  if (systemd_) {
    auto usec =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    systemd_->Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
  }
  auto result = ApplyReload();
  if (systemd_) systemd_->Send("READY=1\nSTATUS=" + StatusLine());
  return result;
}

Config Supervisor::RunningConfig() const {
  Config running = config_;
  running.services.clear();
  for (const auto& slot : services_) running.services.push_back(slot->service->config());
  return running;
}

Result<nlohmann::json> Supervisor::ApplyReload() {
  auto loaded = LoadConfig(config_.path);
  if (!loaded.ok())
    return Status::InvalidArgument("the new configuration was rejected; the running one is kept: " +
                                   loaded.status().message());
  ReloadPlan plan = PlanReload(RunningConfig(), std::move(*loaded));
  // Refuse before touching anything if a service in question is mid-handover.
  for (const auto& c : plan.changed)
    if (Find(c.service)->service->handover_in_progress())
      return Status::Conflict("service '" + c.service + "' is in a handover; reload after it ends");
  auto bound = BindForReload(plan);
  if (!bound.ok())
    return Status::InvalidArgument("the new configuration was rejected; the running one is kept: " +
                                   bound.status().message());

  nlohmann::json report = {{"added", nlohmann::json::array()},   {"removed", plan.removed},
                           {"changed", nlohmann::json::array()}, {"restarting", nlohmann::json::array()},
                           {"unchanged", plan.unchanged},        {"warnings", plan.warnings}};
  (void)SetUpDaemonLog(plan.next.daemon);  // the level, the file or its format may have changed
  ports_.SetRange(plan.next.daemon.port_range);
  for (const auto& name : plan.removed) RemoveService(name);
  for (const auto& change : plan.changed) {
    auto it = bound->find(change.service);
    ApplyChange(change, *plan.next.FindService(change.service), it == bound->end() ? nullptr : &it->second, report);
  }
  for (const auto& name : plan.added) {
    const ServiceConfig& svc = *plan.next.FindService(name);
    if (Status s = AddService(svc, std::move((*bound)[name])); !s.ok()) {
      report["warnings"].push_back(name + ": not added: " + s.message());
      continue;
    }
    report["added"].push_back(name);
  }
  for (const auto& w : plan.next.warnings) spdlog::warn("{}", w);
  config_ = std::move(plan.next);
  OpenNotifySocketToWorkers();
  KeepListeners();
  StartWaiting();  // the added services, each once what it starts after is live
  spdlog::info("reload: {}", JsonText(report));
  return report;
}

// Binds the listeners of added services and of services whose listeners changed, reusing
// every open socket whose address stays (a dup, so its accept queue is never interrupted).
Result<std::map<std::string, std::vector<BoundListener>>> Supervisor::BindForReload(const ReloadPlan& plan) {
  std::map<std::string, BoundListener> reusable;
  for (const auto& slot : services_) {
    const auto& configured = slot->service->config().listeners;
    for (size_t i = 0; i < slot->listeners.size(); ++i) {
      const BoundListener& l = slot->listeners[i];
      const std::array<std::string, 2> keys = {l.address.ToString(),
                                               ReuseKey(slot->service->name(), l.name, configured[i].address)};
      for (const std::string& key : keys) {
        UniqueFd dup(::fcntl(l.fd.get(), F_DUPFD_CLOEXEC, 3));
        if (dup) reusable[key] = BoundListener{l.name, l.address, std::move(dup)};
      }
    }
  }
  std::vector<std::string> to_bind = plan.added;
  for (const auto& c : plan.changed)
    if (c.relisten()) to_bind.push_back(c.service);
  std::map<std::string, std::vector<BoundListener>> bound;
  for (const auto& name : to_bind) {
    auto b = BindListeners(*plan.next.FindService(name), &reusable);
    if (!b.ok()) return b.status();
    bound[name] = std::move(*b);
  }
  return bound;
}

void Supervisor::RemoveService(const std::string& name) {
  auto it = std::find_if(services_.begin(), services_.end(), [&](auto& s) { return s->service->name() == name; });
  ServiceSlot* slot = it->get();
  removing_.push_back(std::move(*it));
  services_.erase(it);
  spdlog::info("reload: removing service {}", name);
  slot->service->Shutdown([this, slot] {
    slot->drained = true;
    // Destroy from the loop, not from inside the service's own callback.
    boost::asio::post(io_,
                      [this, slot] { std::erase_if(removing_, [slot](const auto& s) { return s.get() == slot; }); });
  });
}

void Supervisor::ApplyChange(const ServiceChange& change, const ServiceConfig& wanted,
                             std::vector<BoundListener>* bound, nlohmann::json& report) {
  ServiceSlot& slot = *Find(change.service);
  Service& svc = *slot.service;
  const int replicas = svc.config().replicas;
  ServiceConfig next_config = wanted;
  if (Status s = OpenLogFile(slot, wanted); !s.ok()) report["warnings"].push_back(change.service + ": " + s.message());
  if (bound) {
    slot.listeners = std::move(*bound);
    slot.steering->Rebuild(next_config, slot.listeners, config_.daemon);
  } else {
    next_config.listeners = svc.config().listeners;  // as running: steered or fallen back to shared
  }
  svc.Reconfigure(next_config, InheritedListeners(next_config, slot.listeners));
  if (bound) StartProxies(slot);
  report["changed"].push_back({{"service", change.service}, {"keys", change.diff.changed}});
  if (change.diff.needs_new_generation && !svc.stopped()) {
    // A new generation carries the new command, env or listeners, through the usual checks.
    std::string name = change.service;
    auto done = [name](const HandoverResult& r) {
      if (!r.promoted) spdlog::error("reload: restart of {} failed: {}", name, r.reason);
    };
    Status s = svc.live() ? RunHandover(svc, svc.live()->release, HandoverKind::kRestart, nullptr, done)
                          : Start(name, nullptr, done);
    if (s.ok())
      report["restarting"].push_back(name);
    else
      report["warnings"].push_back(name + ": not restarted: " + s.message());
  } else if (change.resize()) {
    // Scale moves from the running number of workers to the new one, one at a time.
    ServiceConfig as_running = next_config;
    as_running.replicas = replicas;
    svc.Reconfigure(as_running, InheritedListeners(wanted, slot.listeners));
    if (Status s = svc.Scale(wanted.replicas); !s.ok())
      report["warnings"].push_back(change.service + ": " + s.message());
  }
}

}  // namespace baton
