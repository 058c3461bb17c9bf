#include "supervisor/health/liveness.h"

#include "supervisor/base/duration.h"

namespace baton {

LivenessCheck::LivenessCheck(Clock& clock, ProbeRunner& runner, const HealthConfig& config, std::vector<Probe> probes,
                             Failed failed, std::function<void(const Status&)> on_round)
    : clock_(clock),
      runner_(runner),
      config_(config),
      probes_(std::move(probes)),
      failed_(std::move(failed)),
      on_round_(std::move(on_round)) {}

LivenessCheck::~LivenessCheck() { alive_.End(); }

void LivenessCheck::Start() {
  if (!probes_.empty()) ScheduleRound();
  if (config_.watchdog.count() > 0) ArmWatchdog();
}

void LivenessCheck::OnWatchdog() {
  if (config_.watchdog.count() > 0) ArmWatchdog();
}

void LivenessCheck::OnWatchdogTrigger() { Fail("the worker sent WATCHDOG=trigger"); }

void LivenessCheck::ArmWatchdog() {
  watchdog_ = clock_.After(config_.watchdog, [this] {
    ArmWatchdog();  // a worker that stays silent is reported again a period later
    Fail("no WATCHDOG=1 within " + FormatDuration(config_.watchdog));
  });
}

void LivenessCheck::ScheduleRound() {
  next_round_ = clock_.After(config_.interval, [this] { Round(); });
}

void LivenessCheck::Round() {
  int round = ++round_;
  waiting_ = probes_.size();
  round_error_.clear();
  for (const auto& probe : probes_)
    runner_.Run(probe, config_.timeout, [this, round, alive = alive_.token()](Status result) {
      if (alive) OnProbe(round, std::move(result));
    });
}

void LivenessCheck::OnProbe(int round, Status result) {
  if (round != round_ || waiting_ == 0) return;
  if (!result.ok() && round_error_.empty()) round_error_ = result.message();
  if (--waiting_ == 0) EndRound();
}

void LivenessCheck::EndRound() {
  last_at_ = clock_.WallSeconds();
  last_result_ = round_error_.empty() ? "ok" : round_error_;
  if (on_round_) on_round_(round_error_.empty() ? Status::Ok() : Status::Failed(round_error_));
  ScheduleRound();
  if (round_error_.empty()) {
    consecutive_failures_ = 0;
    return;
  }
  // Reported at `failures` in a row, and again every `failures` more.
  if (++consecutive_failures_ % config_.failures != 0) return;
  Fail("health check failed " + std::to_string(consecutive_failures_) + " time(s) in a row: " + round_error_);
}

// May destroy this check (the owner stops the worker): nothing is touched afterwards.
void LivenessCheck::Fail(const std::string& reason) { failed_(reason); }

nlohmann::json LivenessCheck::Describe() const {
  nlohmann::json out = {{"consecutive_failures", consecutive_failures_}};
  if (!last_result_.empty()) {
    out["last_result"] = last_result_;
    out["last_at"] = last_at_;
  }
  return out;
}

}  // namespace baton
