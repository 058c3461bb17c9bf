// Progressive handover (rollout.strategy = "progressive", proxy mode): once every new
// worker is ready, the new generation gets steps[i] percent of new connections for
// step_time each while the old one keeps the rest and stays live. After each step the new
// generation's figures for that step are checked against the thresholds (connect
// failures and resets as they happen, the error ratio and the operator's check at the
// end); a breach, a new worker's exit or an abort sends every new connection back to the
// old generation and stops the new one through FailHandover. After the last step, the
// usual Promote drains the old generation.
#include "supervisor/base/duration.h"
#include "supervisor/base/log.h"
#include "supervisor/handover/service.h"

namespace baton {

namespace {

GenerationTraffic Minus(const GenerationTraffic& a, const GenerationTraffic& b) {
  return {a.connections - b.connections, a.failures - b.failures, a.resets - b.resets};
}

}  // namespace

void Service::BeginStep(int step) {
  Pending& h = *handover_;
  h.step = step;
  h.at_step_start = io_.traffic ? io_.traffic(h.new_gen) : GenerationTraffic{};
  h.old_at_step_start = io_.traffic && h.old_gen ? io_.traffic(h.old_gen) : GenerationTraffic{};
  int weight = config_.rollout.steps[static_cast<size_t>(step)];
  const Generation* gen = FindGen(h.new_gen);
  Emit("step", gen, 0,
       "step " + std::to_string(step + 1) + "/" + std::to_string(config_.rollout.steps.size()) + ": " +
           std::to_string(weight) + "% of new connections to " + gen->release.version + " for " +
           FormatDuration(config_.rollout.step_time));
  SteerTraffic();
  if (h.paused) {
    h.step_left = config_.rollout.step_time;
    return;
  }
  ArmStepTimer(config_.rollout.step_time);
}

void Service::ArmStepTimer(Duration left) {
  Pending& h = *handover_;
  h.step_due = clock_.Now() + left;
  h.step_timer = clock_.After(left, [this] { OnStepEnd(); });
}

GenerationTraffic Service::StepTraffic() const {
  GenerationTraffic now = io_.traffic ? io_.traffic(handover_->new_gen) : GenerationTraffic{};
  return Minus(now, handover_->at_step_start);
}

// A threshold the step's figures break, described; nullopt while they hold. The ratio is
// only judged at the step's end, when it has its whole sample.
std::optional<std::string> Service::StepBreach(bool at_end) const {
  const RolloutConfig& r = config_.rollout;
  GenerationTraffic t = StepTraffic();
  auto figures = [&] {
    return " (" + std::to_string(t.connections) + " connections, " + std::to_string(t.failures) +
           " connect failures, " + std::to_string(t.resets) + " resets)";
  };
  if (static_cast<int64_t>(t.failures) > r.max_connect_failures)
    return std::to_string(t.failures) + " backend connect failures, more than rollout.max_connect_failures " +
           std::to_string(r.max_connect_failures) + figures();
  if (static_cast<int64_t>(t.resets) > r.max_resets)
    return std::to_string(t.resets) + " connections reset by the new workers, more than rollout.max_resets " +
           std::to_string(r.max_resets) + figures();
  if (at_end && t.connections > 0) {
    double ratio = static_cast<double>(t.failures + t.resets) / static_cast<double>(t.connections);
    if (ratio > r.max_error_ratio)
      return "error ratio " + std::to_string(ratio) + " above rollout.max_error_ratio " +
             std::to_string(r.max_error_ratio) + figures();
  }
  return std::nullopt;
}

void Service::OnStepEnd() {
  if (!progressive_running()) return;
  Pending& h = *handover_;
  h.step_timer.reset();
  if (auto breach = StepBreach(true)) return (void)Abort(*breach);
  if (config_.rollout.check.empty()) return NextStep();
  // The operator's own test, with the new generation's first worker's environment.
  const Generation* gen = FindGen(h.new_gen);
  auto spec = BuildLaunchSpec(gen->release, gen, gen->workers.front()->probe_port, gen->workers.front()->backend_ports,
                              nullptr);
  Probe probe{Probe::Kind::kExec, "", config_.rollout.check, spec.ok() ? spec->env : decltype(spec->env){}};
  h.checking = true;
  int64_t new_gen = h.new_gen;
  int step = h.step;
  std::weak_ptr<bool> alive = alive_;
  probes_.Run(probe, config_.rollout.step_time, [this, alive, new_gen, step](Status s) {
    if (alive.expired() || !handover_ || handover_->new_gen != new_gen || handover_->step != step) return;
    handover_->checking = false;
    if (!s.ok()) return (void)Abort("rollout.check failed: " + s.message());
    NextStep();
  });
}

void Service::NextStep() {
  Pending& h = *handover_;
  if (h.paused) {
    h.advance_on_resume = true;
    return;
  }
  GenerationTraffic t = StepTraffic();
  GenerationTraffic old = io_.traffic && h.old_gen ? Minus(io_.traffic(h.old_gen), h.old_at_step_start)
                                                   : GenerationTraffic{};
  h.steps.push_back({{"step", h.step + 1},
                     {"weight", config_.rollout.steps[static_cast<size_t>(h.step)]},
                     {"connections", t.connections},
                     {"old_connections", old.connections},
                     {"failures", t.failures},
                     {"resets", t.resets}});
  Emit("step_passed", FindGen(h.new_gen), 0,
       "step " + std::to_string(h.step + 1) + " passed: " + std::to_string(t.connections) + " connections, " +
           std::to_string(t.failures) + " connect failures, " + std::to_string(t.resets) + " resets");
  if (static_cast<size_t>(h.step + 1) < config_.rollout.steps.size()) return BeginStep(h.step + 1);
  Promote();
}

Status Service::PromoteNow() {
  if (!progressive_running()) return Status::FailedPrecondition("no progressive handover of '" + name() + "' is running");
  Emit("promote", FindGen(handover_->new_gen), 0,
       "the remaining steps are skipped at step " + std::to_string(handover_->step + 1));
  Promote();
  return Status::Ok();
}

Status Service::Pause() {
  if (!progressive_running()) return Status::FailedPrecondition("no progressive handover of '" + name() + "' is running");
  Pending& h = *handover_;
  if (h.paused) return Status::Ok();
  h.paused = true;
  if (h.step_timer) {
    h.step_left = std::max(Duration(0), std::chrono::duration_cast<Duration>(h.step_due - clock_.Now()));
    h.step_timer.reset();
  }
  Emit("paused", FindGen(h.new_gen), 0, "held at step " + std::to_string(h.step + 1));
  return Status::Ok();
}

Status Service::Resume() {
  if (!progressive_running()) return Status::FailedPrecondition("no progressive handover of '" + name() + "' is running");
  Pending& h = *handover_;
  if (!h.paused) return Status::Ok();
  h.paused = false;
  Emit("resumed", FindGen(h.new_gen), 0, "step " + std::to_string(h.step + 1) + " carries on");
  if (h.advance_on_resume) {
    h.advance_on_resume = false;
    NextStep();
  } else if (!h.checking) {
    ArmStepTimer(h.step_left);
  }
  return Status::Ok();
}

Status Service::Abort(const std::string& why) {
  if (!progressive_running()) return Status::FailedPrecondition("no progressive handover of '" + name() + "' is running");
  int step = handover_->step;
  int weight = config_.rollout.steps[static_cast<size_t>(step)];
  FailHandover("progressive handover aborted at step " + std::to_string(step + 1) + "/" +
               std::to_string(config_.rollout.steps.size()) + " (" + std::to_string(weight) +
               "% of new connections): " + why);
  return Status::Ok();
}

nlohmann::json Service::DescribeProgress() const {
  const Pending& h = *handover_;
  GenerationTraffic t = StepTraffic();
  GenerationTraffic old = io_.traffic && h.old_gen ? io_.traffic(h.old_gen) : GenerationTraffic{};
  return {{"step", h.step + 1},
          {"steps", config_.rollout.steps},
          {"weight", config_.rollout.steps[static_cast<size_t>(h.step)]},
          {"paused", h.paused},
          {"checking", h.checking},
          {"step_left_s", std::chrono::duration<double>(h.paused ? h.step_left
                                                                  : std::max(Duration(0), std::chrono::duration_cast<Duration>(
                                                                                              h.step_due - clock_.Now())))
                              .count()},
          {"this_step", {{"connections", t.connections}, {"failures", t.failures}, {"resets", t.resets}}},
          {"old_generation_connections", old.connections},
          {"steps_passed", h.steps}};
}

}  // namespace baton
