// What a reload changes, decided from the running configuration and the new one alone.
// Pure: the supervisor binds what the plan names and applies it (supervisor_reload.cc).
#pragma once

#include <string>
#include <vector>

#include "supervisor/config/config.h"
#include "supervisor/config/diff.h"

namespace baton {

struct ServiceChange {
  std::string service;
  ServiceDiff diff;
  // Its listeners changed: they are bound anew (or reused by address).
  bool relisten() const { return diff.Mentions("listen"); }
  // Its number of workers changes.
  bool resize() const { return diff.Mentions("replicas"); }
};

struct ReloadPlan {
  // The new configuration, with what cannot move under a running batond put back as it
  // runs (control socket, state directory, socket group, health endpoint, tunnels).
  Config next;
  std::vector<std::string> added, removed, unchanged;  // service names
  std::vector<ServiceChange> changed;
  std::vector<std::string> warnings;  // the new configuration's own, then the plan's
};

// `running` is the configuration as it runs: the services in batond's order with the
// settings they run with (a scale or a fallback to shared sockets changes them).
ReloadPlan PlanReload(const Config& running, Config next);

}  // namespace baton
