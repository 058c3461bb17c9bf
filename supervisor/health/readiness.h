// Readiness of one worker: every configured check must pass within ready.timeout.
// Checks: sd_notify READY=1 (delivered via OnNotifyReady), HTTP/TCP/exec probes retried
// every ready.interval until each has passed once, and min_uptime. With no check
// configured, a worker is ready once started (plus min_uptime). Passive: owns its timers;
// destroying it cancels everything and `done` is never called after that.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "supervisor/base/lifetime.h"
#include "supervisor/config/config.h"
#include "supervisor/health/probe.h"

namespace baton {

class ReadinessCheck {
 public:
  using Done = std::function<void(Status)>;
  ReadinessCheck(Clock& clock, ProbeRunner& runner, const ReadyConfig& config, std::vector<Probe> probes, Done done);
  ~ReadinessCheck();
  void Start();
  void OnNotifyReady();
  bool finished() const { return finished_; }
  // What is still awaited, e.g. "READY=1 via sd_notify, tcp 127.0.0.1:4000 (connection refused)".
  std::string Pending() const;

 private:
  struct ProbeState {
    Probe probe;
    bool passed = false;
    bool in_flight = false;
    std::string last_error;
    std::unique_ptr<Timer> retry;
  };
  void Attempt(size_t index);
  void MaybeDone();
  void Finish(Status status);

  Clock& clock_;
  ProbeRunner& runner_;
  ReadyConfig config_;
  std::vector<ProbeState> probes_;
  bool notified_ = false;
  bool uptime_reached_ = false;
  bool finished_ = false;
  Done done_;
  std::unique_ptr<Timer> deadline_;
  std::unique_ptr<Timer> uptime_;
  Lifetime alive_;  // guards probe callbacks
};

}  // namespace baton
