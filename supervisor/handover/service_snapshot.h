// What a self-upgrade carries of a service (Service::Snapshot, Restore): the live
// generation's workers typed, since there can be thousands, and the rest as a sub-document.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace baton {

struct CarriedWorker {
  int id = 0;
  int pid = 0;
  std::string phase;  // WorkerPhaseName
  double started_wall = 0;
  int restarts = 0;
  int quick_failures = 0;
  std::string notify_status;
  std::map<std::string, int> backend_ports;
  std::vector<std::string> stderr_tail;
  std::optional<int> probe_port;
  std::optional<int64_t> restart_in_ms;  // in backoff
};

struct ServiceSnapshot {
  nlohmann::json fields;               // everything else; "live" without its workers
  std::vector<CarriedWorker> workers;  // the live generation's, carried as live.workers
};

}  // namespace baton
