// Liveness of one ready worker: rounds of health probes (every probe once, each within
// health.timeout) every health.interval, and the sd_notify watchdog. It only judges:
// `failed` hears when `failures` rounds in a row failed, or when no WATCHDOG=1 came within
// health.watchdog; the owner decides what follows. The check goes on afterwards, so a
// worker that could not be replaced is reported again after `failures` more. Passive: owns its
// timers; destroying it cancels everything.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "supervisor/base/lifetime.h"
#include "supervisor/config/config.h"
#include "supervisor/health/probe.h"

namespace baton {

class LivenessCheck {
 public:
  using Failed = std::function<void(const std::string& reason)>;
  // `on_round` hears every round's result (for counters); may be null.
  LivenessCheck(Clock& clock, ProbeRunner& runner, const HealthConfig& config, std::vector<Probe> probes, Failed failed,
                std::function<void(const Status&)> on_round = {});
  ~LivenessCheck();
  void Start();
  // WATCHDOG=1: the worker is alive; the watchdog starts counting again.
  void OnWatchdog();
  // WATCHDOG=trigger: the worker says it is not well.
  void OnWatchdogTrigger();

  int consecutive_failures() const { return consecutive_failures_; }
  // {"consecutive_failures", "last_result" ("ok" or why), "last_at" (wall seconds)}.
  nlohmann::json Describe() const;

 private:
  void ScheduleRound();
  void Round();
  void OnProbe(int round, Status result);
  void EndRound();
  void ArmWatchdog();
  void Fail(const std::string& reason);

  Clock& clock_;
  ProbeRunner& runner_;
  HealthConfig config_;
  std::vector<Probe> probes_;
  Failed failed_;
  std::function<void(const Status&)> on_round_;
  int round_ = 0;
  size_t waiting_ = 0;       // probes of this round not yet answered
  std::string round_error_;  // the first failure of this round
  int consecutive_failures_ = 0;
  std::string last_result_;
  double last_at_ = 0;
  std::unique_ptr<Timer> next_round_;
  std::unique_ptr<Timer> watchdog_;
  Lifetime alive_;  // guards probe callbacks
};

}  // namespace baton
