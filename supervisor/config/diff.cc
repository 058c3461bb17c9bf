#include "supervisor/config/diff.h"

namespace baton {

namespace {}  // namespace

ServiceDiff DiffService(const ServiceConfig& a, const ServiceConfig& b) {
  ServiceDiff d;
  auto note = [&](bool same, const char* key, bool new_generation) {
    if (same) return;
    d.changed.push_back(key);
    d.needs_new_generation = d.needs_new_generation || new_generation;
  };
  note(a.command == b.command, "command", true);
  note(a.env == b.env, "env", true);
  note(a.env_files == b.env_files, "env_file", true);
  note(a.cwd == b.cwd, "cwd", true);
  note(std::tie(a.user, a.group, a.supplementary_groups) == std::tie(b.user, b.group, b.supplementary_groups), "user",
       true);
  note(a.umask == b.umask, "umask", true);
  note(a.limits == b.limits, "limits", true);
  note(a.pass_env == b.pass_env, "pass_env", true);
  note(a.listeners == b.listeners, "listen", true);
  note(a.version == b.version, "version", false);
  note(a.replicas == b.replicas, "replicas", false);
  note(a.ready == b.ready, "ready", false);
  // Workers learn the watchdog from their environment (WATCHDOG_USEC); probes apply at once.
  note(a.health == b.health, "health", a.health.watchdog != b.health.watchdog);
  note(a.recycle == b.recycle, "recycle", false);
  note(a.stop == b.stop, "stop", false);
  note(a.restart == b.restart, "restart", false);
  note(a.rollout == b.rollout, "rollout", false);
  note(a.bake_time == b.bake_time, "bake_time", false);
  note(a.after == b.after, "after", false);
  note(a.log == b.log, "log", false);
  note(a.hooks == b.hooks, "hooks", false);
  note(a.fd_store_max == b.fd_store_max, "fd_store_max", false);
  return d;
}

}  // namespace baton
