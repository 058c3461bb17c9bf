// Progressive handover (rollout.strategy = "progressive"): the I/O around a Rollout
// (rollout.h). Once every new worker is ready, each step's weight goes to the proxy router
// or the kernel steering, a timer ends the step, its figures are judged (connect failures
// and resets as they happen, the error ratio and the operator's check at the end); a
// breach, a new worker's exit or an abort sends every new connection back to the old
// generation and stops the new one through FailHandover. After the last step, the usual
// Promote drains the old generation.
#include "supervisor/base/duration.h"
#include "supervisor/base/log.h"
#include "supervisor/handover/service.h"

namespace baton {

GenerationTraffic Service::TrafficOf(int64_t generation) const {
  return io_.traffic && generation ? io_.traffic(generation) : GenerationTraffic{};
}

void Service::BeginStep(int step) {
  Pending& h = *handover_;
  if (!h.rollout) h.rollout.emplace(config_.rollout, h.old_gen, h.new_gen);
  Rollout& r = *h.rollout;
  r.Begin(step, clock_.Now(), TrafficOf(h.new_gen), TrafficOf(h.old_gen));
  const Generation* gen = FindGen(h.new_gen);
  Emit(EventType::kStep, gen, 0,
       r.StepName() + ": " + std::to_string(r.weight()) + "% of new connections to " + gen->release.version + " for " +
           FormatDuration(config_.rollout.step_time));
  SteerTraffic();
  if (!r.paused()) ArmStepTimer(config_.rollout.step_time);
}

void Service::ArmStepTimer(Duration left) {
  handover_->rollout->Schedule(clock_.Now(), left);
  handover_->step_timer = clock_.After(left, [this] { OnStepEnd(); });
}

void Service::OnStepEnd() {
  if (!progressive_running()) return;
  Pending& h = *handover_;
  h.step_timer.reset();
  if (auto breach = h.rollout->Breach(TrafficOf(h.new_gen), true)) return (void)Abort(*breach);
  if (config_.rollout.check.empty()) return NextStep();
  // The operator's own test, with the new generation's first worker's environment.
  const Generation* gen = FindGen(h.new_gen);
  auto spec = BuildLaunchSpec(gen->release, gen, gen->workers.front()->probe_port, gen->workers.front()->backend_ports,
                              nullptr);
  Probe probe{Probe::Kind::kExec, "", config_.rollout.check, spec.ok() ? spec->env : decltype(spec->env){}};
  h.rollout->SetChecking(true);
  int64_t new_gen = h.new_gen;
  int step = h.rollout->step();
  auto alive = alive_.token();
  probes_.Run(probe, config_.rollout.step_time, [this, alive, new_gen, step](Status s) {
    if (!alive || !progressive_running() || handover_->new_gen != new_gen || handover_->rollout->step() != step) return;
    handover_->rollout->SetChecking(false);
    if (!s.ok()) return (void)Abort("rollout.check failed: " + s.message());
    NextStep();
  });
}

void Service::NextStep() {
  Pending& h = *handover_;
  Rollout& r = *h.rollout;
  if (!r.MayAdvance()) return;  // paused: Resume moves on
  r.Pass(TrafficOf(h.new_gen), TrafficOf(h.old_gen));
  const nlohmann::json& figures = r.passed().back();
  Emit(EventType::kStepPassed, FindGen(h.new_gen), 0,
       "step " + std::to_string(r.step() + 1) + " passed: " + figures["connections"].dump() + " connections, " +
           figures["failures"].dump() + " connect failures, " + figures["resets"].dump() + " resets");
  if (!r.last_step()) return BeginStep(r.step() + 1);
  Promote();
}

Status Service::PromoteNow() {
  if (!progressive_running())
    return Status::FailedPrecondition("no progressive handover of '" + name() + "' is running");
  Emit(EventType::kPromote, FindGen(handover_->new_gen), 0,
       "the remaining steps are skipped at step " + std::to_string(handover_->rollout->step() + 1));
  Promote();
  return Status::Ok();
}

Status Service::Pause() {
  if (!progressive_running())
    return Status::FailedPrecondition("no progressive handover of '" + name() + "' is running");
  Pending& h = *handover_;
  if (!h.rollout->Pause(clock_.Now())) return Status::Ok();
  h.step_timer.reset();
  Emit(EventType::kPaused, FindGen(h.new_gen), 0, "held at step " + std::to_string(h.rollout->step() + 1));
  return Status::Ok();
}

Status Service::Resume() {
  if (!progressive_running())
    return Status::FailedPrecondition("no progressive handover of '" + name() + "' is running");
  Pending& h = *handover_;
  if (!h.rollout->paused()) return Status::Ok();
  Emit(EventType::kResumed, FindGen(h.new_gen), 0, "step " + std::to_string(h.rollout->step() + 1) + " carries on");
  switch (h.rollout->Resume(clock_.Now())) {
    case Rollout::AfterResume::kNextStep: NextStep(); break;
    case Rollout::AfterResume::kRestartTimer: ArmStepTimer(h.rollout->Left(clock_.Now())); break;
    case Rollout::AfterResume::kNothing: break;
  }
  return Status::Ok();
}

Status Service::Abort(const std::string& why) {
  if (!progressive_running())
    return Status::FailedPrecondition("no progressive handover of '" + name() + "' is running");
  const Rollout& r = *handover_->rollout;
  FailHandover("progressive handover aborted at " + r.StepName() + " (" + std::to_string(r.weight()) +
               "% of new connections): " + why);
  return Status::Ok();
}

nlohmann::json Service::DescribeProgress() const {
  const Pending& h = *handover_;
  return h.rollout->Describe(clock_.Now(), TrafficOf(h.new_gen), TrafficOf(h.old_gen));
}

}  // namespace baton
