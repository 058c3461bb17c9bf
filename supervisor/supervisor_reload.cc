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
#include "supervisor/config/diff.h"
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

Result<nlohmann::json> Supervisor::ApplyReload() {
  auto loaded = LoadConfig(config_.path);
  if (!loaded.ok())
    return Status::InvalidArgument("the new configuration was rejected; the running one is kept: " +
                                   loaded.status().message());
  Config next = std::move(*loaded);
  nlohmann::json report = {{"added", nlohmann::json::array()},     {"removed", nlohmann::json::array()},
                           {"changed", nlohmann::json::array()},   {"restarting", nlohmann::json::array()},
                           {"unchanged", nlohmann::json::array()}, {"warnings", next.warnings}};
  // Where batond listens for control and keeps its state cannot move under it.
  if (next.daemon.control_socket != config_.daemon.control_socket ||
      next.daemon.state_dir != config_.daemon.state_dir || next.daemon.socket_group != config_.daemon.socket_group) {
    report["warnings"].push_back("daemon.control_socket, state_dir and socket_group take effect when batond restarts");
    next.daemon.control_socket = config_.daemon.control_socket;
    next.daemon.state_dir = config_.daemon.state_dir;
    next.daemon.socket_group = config_.daemon.socket_group;
  }
  if (next.tunnels != config_.tunnels) {
    report["warnings"].push_back(
        "[tunnel] changes take effect when batond restarts; the tunnels keep running as they are");
    next.tunnels = config_.tunnels;
  }

  // Plan, and refuse before touching anything if a service in question is mid-handover.
  struct Change {
    ServiceSlot* slot;
    const ServiceConfig* config;
    ServiceDiff diff;
  };
  std::vector<Change> changes;
  std::vector<const ServiceConfig*> added;
  std::vector<std::string> removed;
  for (const auto& svc : next.services) {
    ServiceSlot* slot = Find(svc.name);
    if (!slot) {
      added.push_back(&svc);
      continue;
    }
    ServiceDiff diff = DiffService(slot->service->config(), svc);
    if (diff.empty()) {
      report["unchanged"].push_back(svc.name);
      continue;
    }
    changes.push_back({slot, &svc, std::move(diff)});
  }
  for (const auto& slot : services_) {
    bool kept = false;
    for (const auto& svc : next.services) kept = kept || svc.name == slot->service->name();
    if (!kept) removed.push_back(slot->service->name());
  }
  for (const auto& c : changes)
    if (c.slot->service->handover_in_progress())
      return Status::Conflict("service '" + c.slot->service->name() + "' is in a handover; reload after it ends");

  // Bind what is new; reuse every socket whose address stays.
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
  std::map<std::string, std::vector<BoundListener>> bound;
  for (const auto* svc : added) {
    auto b = BindListeners(*svc, &reusable);
    if (!b.ok())
      return Status::InvalidArgument("the new configuration was rejected; the running one is kept: " +
                                     b.status().message());
    bound[svc->name] = std::move(*b);
  }
  for (const auto& c : changes) {
    if (std::find(c.diff.changed.begin(), c.diff.changed.end(), "listen") == c.diff.changed.end()) continue;
    auto b = BindListeners(*c.config, &reusable);
    if (!b.ok())
      return Status::InvalidArgument("the new configuration was rejected; the running one is kept: " +
                                     b.status().message());
    bound[c.config->name] = std::move(*b);
  }

  // Apply.
  spdlog::set_level(spdlog::level::from_str(next.daemon.log_level));
  ports_.SetRange(next.daemon.port_range);
  for (const auto& name : removed) {
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
    report["removed"].push_back(name);
  }
  for (auto& c : changes) {
    Service& svc = *c.slot->service;
    const bool resize = std::find(c.diff.changed.begin(), c.diff.changed.end(), "replicas") != c.diff.changed.end();
    int replicas = svc.config().replicas;
    const bool relisten = bound.count(svc.name()) > 0;
    ServiceConfig next_config = *c.config;
    if (relisten) {
      c.slot->listeners = std::move(bound[svc.name()]);
      c.slot->steering->Rebuild(next_config, c.slot->listeners, config_.daemon);
    } else {
      next_config.listeners = svc.config().listeners;  // as running: steered or fallen back to shared
    }
    svc.Reconfigure(next_config, InheritedListeners(next_config, c.slot->listeners));
    if (relisten) StartProxies(*c.slot);
    report["changed"].push_back({{"service", svc.name()}, {"keys", c.diff.changed}});
    if (c.diff.needs_new_generation && !svc.stopped()) {
      // A new generation carries the new command, env or listeners, through the usual checks.
      std::string name = svc.name();
      auto done = [name](const HandoverResult& r) {
        if (!r.promoted) spdlog::error("reload: restart of {} failed: {}", name, r.reason);
      };
      Status s = svc.live() ? RunHandover(svc, svc.live()->release, HandoverKind::kRestart, nullptr, done)
                            : Start(name, nullptr, done);
      if (s.ok())
        report["restarting"].push_back(name);
      else
        report["warnings"].push_back(name + ": not restarted: " + s.message());
    } else if (resize) {
      svc.Reconfigure(
          [&] {
            ServiceConfig c2 = next_config;
            c2.replicas = replicas;
            return c2;
          }(),
          InheritedListeners(*c.config, c.slot->listeners));
      if (Status s = svc.Scale(c.config->replicas); !s.ok())
        report["warnings"].push_back(svc.name() + ": " + s.message());
    }
  }
  for (const auto* svc : added) {
    if (Status s = AddService(*svc, std::move(bound[svc->name])); !s.ok()) {
      report["warnings"].push_back(svc->name + ": not added: " + s.message());
      continue;
    }
    StartService(*services_.back()->service);
    report["added"].push_back(svc->name);
  }
  for (const auto& w : next.warnings) spdlog::warn("{}", w);
  config_ = std::move(next);
  OpenNotifySocketToWorkers();
  spdlog::info("reload: {}", JsonText(report));
  return report;
}

}  // namespace baton
