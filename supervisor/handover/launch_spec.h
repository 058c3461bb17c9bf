// How a worker is started: its argv, environment, descriptors, identity and limits, and
// its readiness probes, from the service's config, its release and what batond hands it.
// Pure: the service gathers the inputs (service_workers.cc).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "supervisor/base/status.h"
#include "supervisor/config/config.h"
#include "supervisor/handover/release.h"
#include "supervisor/health/probe.h"
#include "supervisor/process/launcher.h"

namespace baton {

struct WorkerInputs {
  const ServiceConfig& config;
  const Release& release;
  // The listeners workers inherit, in fd order (3, 4, ...): name, batond's fd, port.
  struct Listener {
    std::string name;
    int fd = -1;
    int port = 0;  // 0 for unix sockets
  };
  std::vector<Listener> listeners;
  std::map<std::string, int> own_sockets;               // kernel steering: the generation's socket, by listener
  std::vector<std::pair<std::string, int>> stored_fds;  // the FD store, oldest first
  std::optional<int> probe_port;
  std::map<std::string, int> backend_ports;                   // proxy mode: the worker's own port, by listener
  std::vector<std::pair<std::string, std::string>> base_env;  // batond's environment
  std::string notify_socket;
  std::vector<std::pair<std::string, std::string>> file_env;  // env_file, as read for the generation
};

// With `probes`, also the readiness probes, their templates expanded; with
// `health_probes`, the health probes.
Result<LaunchSpec> BuildLaunchSpec(const WorkerInputs& in, std::vector<Probe>* probes,
                                   std::vector<Probe>* health_probes = nullptr);

// batond's PATH (from `base_env`), or a standard one: what workers and hooks run with.
std::string WorkerPath(const std::vector<std::pair<std::string, std::string>>& base_env);

// Whether any template of the service or the release mentions {probe_port}.
bool NeedsProbePort(const ServiceConfig& config, const Release& release);

}  // namespace baton
