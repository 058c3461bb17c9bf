// Generations and their workers: plain records owned by a Service.
//   Generation: starting -> live -> draining -> exited, or starting -> failed.
//   Worker:     starting -> ready -> stopping -> exited, or -> backoff -> starting (restart).
// A worker of the live generation is replaced without a drop (a failed health check, a
// recycle): a fresh worker of the same release starts beside it, and once that one is
// ready it takes over the place and the replaced one is stopped.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/health/liveness.h"
#include "supervisor/health/readiness.h"
#include "supervisor/handover/release.h"
#include "supervisor/process/launcher.h"

namespace baton {

enum class GenState { kStarting, kLive, kDraining, kExited, kFailed };
enum class WorkerPhase { kStarting, kReady, kStopping, kBackoff, kExited };
// Why a worker is replaced.
enum class ReplaceCause { kHealth, kMemory, kAge, kOperator };

const char* GenStateName(GenState s);
const char* WorkerPhaseName(WorkerPhase p);
const char* ReplaceCauseName(ReplaceCause c);  // "health", "memory", "age", "operator"

struct Worker {
  int id = 0;   // unique within its generation
  int pid = 0;  // 0 while not running
  WorkerPhase phase = WorkerPhase::kStarting;
  SteadyTime started{};
  double started_wall = 0;
  int restarts = 0;
  int quick_failures = 0;  // crashes in a row that came sooner than restart.reset_after
  int port_races = 0;      // starts lost to another process taking a port batond picked
  std::optional<ExitInfo> last_exit;
  std::deque<std::string> stderr_tail;  // last lines, for failure reasons
  std::string notify_status;            // last STATUS= from sd_notify
  std::optional<int> probe_port;
  std::map<std::string, int> backend_ports;   // proxied listener -> the loopback port it binds
  std::unique_ptr<ReadinessCheck> readiness;  // while starting
  std::unique_ptr<LivenessCheck> liveness;    // while ready in the live generation, with [health]
  bool unhealthy = false;                     // its health check gave up on it: routed to last
  // A replacement: the worker it takes over from (-1: none), why, and since when.
  int replaces = -1;
  ReplaceCause replace_cause = ReplaceCause::kHealth;
  SteadyTime replace_started{};
  int replaced_by = -1;          // the replacement starting for this worker, -1: none
  bool superseded = false;       // another worker took its place: never restarted
  uint64_t rss = 0;              // its process group's resident memory, last sampled (recycle)
  std::unique_ptr<Timer> timer;  // stop escalation, or restart backoff
  SteadyTime restart_due{};      // while in backoff

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
  int next_worker_id = 0;
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
