// Generations and their workers: plain records owned by a Service.
//   Generation: starting -> live -> draining -> exited, or starting -> failed.
//   Worker:     starting -> ready -> stopping -> exited, or -> backoff -> starting (restart).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/health/readiness.h"
#include "supervisor/handover/release.h"
#include "supervisor/process/launcher.h"

namespace baton {

enum class GenState { kStarting, kLive, kDraining, kExited, kFailed };
enum class WorkerPhase { kStarting, kReady, kStopping, kBackoff, kExited };

const char* GenStateName(GenState s);
const char* WorkerPhaseName(WorkerPhase p);

struct Worker {
  int id = 0;   // index within its generation
  int pid = 0;  // 0 while not running
  WorkerPhase phase = WorkerPhase::kStarting;
  SteadyTime started{};
  double started_wall = 0;
  int restarts = 0;
  int quick_failures = 0;  // crashes in a row that came sooner than restart.reset_after
  std::optional<ExitInfo> last_exit;
  std::deque<std::string> stderr_tail;  // last lines, for failure reasons
  std::string notify_status;            // last STATUS= from sd_notify
  std::optional<int> probe_port;
  std::map<std::string, int> backend_ports;   // proxied listener -> the loopback port it binds
  std::unique_ptr<ReadinessCheck> readiness;  // while starting
  std::unique_ptr<Timer> timer;               // stop escalation, or restart backoff
  SteadyTime restart_due{};                   // while in backoff

  bool active() const {
    return phase == WorkerPhase::kStarting || phase == WorkerPhase::kReady || phase == WorkerPhase::kBackoff;
  }
  std::string StderrTail(size_t lines) const;
};

struct Generation {
  int64_t id = 0;
  Release release;
  GenState state = GenState::kStarting;
  std::vector<std::unique_ptr<Worker>> workers;
  SteadyTime started{};
  double started_wall = 0;
  std::string reason;                          // why it failed
  std::optional<SteadyTime> stop_started;      // when it was told to drain or stop
  GenState after_drain = GenState::kDraining;  // kFailed for a progressive release given up on
  std::unique_ptr<Timer> drain_timer;          // waiting for its connections to close or its queues to empty
  std::unique_ptr<Timer> queue_poll;           // kernel steering: next look at its accept queues
  std::map<std::string, int> sockets;          // kernel steering: listener name -> this generation's socket
  std::vector<std::pair<std::string, std::string>> file_env;  // env_file, as read when it started

  size_t CountActive() const;
  size_t CountRunning() const;  // workers with a live process
};

}  // namespace baton
