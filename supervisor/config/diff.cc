#include "supervisor/config/diff.h"

#include <tuple>

namespace baton {

namespace {

bool SameListeners(const std::vector<ListenerConfig>& a, const std::vector<ListenerConfig>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tie(a[i].name, a[i].address, a[i].backlog, a[i].mode, a[i].proxy) !=
        std::tie(b[i].name, b[i].address, b[i].backlog, b[i].mode, b[i].proxy))
      return false;
  return true;
}

bool SameReady(const ReadyConfig& a, const ReadyConfig& b) {
  return std::tie(a.notify, a.http, a.tcp, a.exec, a.timeout, a.interval, a.probe_timeout, a.min_uptime) ==
         std::tie(b.notify, b.http, b.tcp, b.exec, b.timeout, b.interval, b.probe_timeout, b.min_uptime);
}

bool SameRestart(const RestartConfig& a, const RestartConfig& b) {
  return std::tie(a.initial_backoff, a.max_backoff, a.multiplier, a.max_failures, a.reset_after) ==
         std::tie(b.initial_backoff, b.max_backoff, b.multiplier, b.max_failures, b.reset_after);
}

}  // namespace

ServiceDiff DiffService(const ServiceConfig& a, const ServiceConfig& b) {
  ServiceDiff d;
  auto note = [&](bool same, const char* key, bool new_generation) {
    if (same) return;
    d.changed.push_back(key);
    d.needs_new_generation = d.needs_new_generation || new_generation;
  };
  note(a.command == b.command, "command", true);
  note(a.env == b.env, "env", true);
  note(a.cwd == b.cwd, "cwd", true);
  note(std::tie(a.user, a.group, a.supplementary_groups) == std::tie(b.user, b.group, b.supplementary_groups), "user",
       true);
  note(a.umask == b.umask, "umask", true);
  note(a.limits == b.limits, "limits", true);
  note(a.pass_env == b.pass_env, "pass_env", true);
  note(SameListeners(a.listeners, b.listeners), "listen", true);
  note(a.version == b.version, "version", false);
  note(a.replicas == b.replicas, "replicas", false);
  note(SameReady(a.ready, b.ready), "ready", false);
  note(a.stop.signal == b.stop.signal && a.stop.timeout == b.stop.timeout &&
           a.stop.drain_timeout == b.stop.drain_timeout && a.stop.wait_for_connections == b.stop.wait_for_connections,
       "stop", false);
  note(SameRestart(a.restart, b.restart), "restart", false);
  note(a.rollout == b.rollout, "rollout", false);
  note(a.bake_time == b.bake_time, "bake_time", false);
  note(a.fd_store_max == b.fd_store_max, "fd_store_max", false);
  return d;
}

}  // namespace baton
