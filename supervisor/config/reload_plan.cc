#include "supervisor/config/reload_plan.h"

namespace baton {

ReloadPlan PlanReload(const Config& running, Config next) {
  ReloadPlan plan;
  plan.warnings = next.warnings;
  DaemonConfig& daemon = next.daemon;
  if (daemon.control_socket != running.daemon.control_socket || daemon.state_dir != running.daemon.state_dir ||
      daemon.socket_group != running.daemon.socket_group) {
    plan.warnings.push_back("daemon.control_socket, state_dir and socket_group take effect when batond restarts");
    daemon.control_socket = running.daemon.control_socket;
    daemon.state_dir = running.daemon.state_dir;
    daemon.socket_group = running.daemon.socket_group;
  }
  if (daemon.health != running.daemon.health) {
    plan.warnings.push_back("daemon.health takes effect when batond restarts");
    daemon.health = running.daemon.health;
  }
  if (daemon.web != running.daemon.web || daemon.web_read_only != running.daemon.web_read_only) {
    plan.warnings.push_back("daemon.web takes effect when batond restarts");
    daemon.web = running.daemon.web;
    daemon.web_read_only = running.daemon.web_read_only;
  }
  if (next.tunnels != running.tunnels) {
    plan.warnings.push_back("[tunnel] changes take effect when batond restarts; the tunnels keep running as they are");
    next.tunnels = running.tunnels;
  }
  for (const auto& svc : next.services) {
    const ServiceConfig* now = running.FindService(svc.name);
    if (!now) {
      plan.added.push_back(svc.name);
      continue;
    }
    ServiceDiff diff = DiffService(*now, svc);
    if (diff.empty()) {
      plan.unchanged.push_back(svc.name);
      continue;
    }
    plan.changed.push_back({svc.name, std::move(diff)});
  }
  for (const auto& svc : running.services)
    if (!next.FindService(svc.name)) plan.removed.push_back(svc.name);
  plan.next = std::move(next);
  return plan;
}

}  // namespace baton
