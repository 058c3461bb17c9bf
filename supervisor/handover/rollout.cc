#include "supervisor/handover/rollout.h"

#include <algorithm>

namespace baton {

namespace {

GenerationTraffic Minus(const GenerationTraffic& a, const GenerationTraffic& b) {
  return {a.connections - b.connections, a.failures - b.failures, a.resets - b.resets};
}

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Rollout::Rollout(RolloutConfig config, int64_t old_gen, int64_t new_gen)
    : config_(std::move(config)), old_gen_(old_gen), new_gen_(new_gen) {}

void Rollout::Begin(int step, SteadyTime now, GenerationTraffic new_now, GenerationTraffic old_now) {
  step_ = step;
  new_at_step_start_ = new_now;
  old_at_step_start_ = old_now;
  due_ = now + config_.step_time;
  left_ = config_.step_time;
}

std::string Rollout::StepName() const {
  return "step " + std::to_string(step_ + 1) + "/" + std::to_string(config_.steps.size());
}

std::vector<GenerationWeight> Rollout::Weights() const {
  std::vector<GenerationWeight> weights;
  if (weight() < 100) weights.push_back({old_gen_, 100 - weight()});
  if (weight() > 0) weights.push_back({new_gen_, weight()});
  return weights;
}

bool Rollout::TakeForNew() {
  uint64_t n = routed_++;
  auto w = static_cast<uint64_t>(weight());
  return (n + 1) * w / 100 > n * w / 100;
}

GenerationTraffic Rollout::StepTraffic(GenerationTraffic new_now) const { return Minus(new_now, new_at_step_start_); }

std::optional<std::string> Rollout::Breach(GenerationTraffic new_now, bool at_end) const {
  GenerationTraffic t = StepTraffic(new_now);
  auto figures = [&] {
    return " (" + std::to_string(t.connections) + " connections, " + std::to_string(t.failures) +
           " connect failures, " + std::to_string(t.resets) + " resets)";
  };
  if (static_cast<int64_t>(t.failures) > config_.max_connect_failures)
    return std::to_string(t.failures) + " backend connect failures, more than rollout.max_connect_failures " +
           std::to_string(config_.max_connect_failures) + figures();
  if (static_cast<int64_t>(t.resets) > config_.max_resets)
    return std::to_string(t.resets) + " connections reset by the new workers, more than rollout.max_resets " +
           std::to_string(config_.max_resets) + figures();
  if (at_end && t.connections > 0) {
    double ratio = static_cast<double>(t.failures + t.resets) / static_cast<double>(t.connections);
    if (ratio > config_.max_error_ratio)
      return "error ratio " + std::to_string(ratio) + " above rollout.max_error_ratio " +
             std::to_string(config_.max_error_ratio) + figures();
  }
  return std::nullopt;
}

void Rollout::Pass(GenerationTraffic new_now, GenerationTraffic old_now) {
  GenerationTraffic t = StepTraffic(new_now);
  GenerationTraffic old = Minus(old_now, old_at_step_start_);
  passed_.push_back({{"step", step_ + 1},
                     {"weight", weight()},
                     {"connections", t.connections},
                     {"old_connections", old.connections},
                     {"failures", t.failures},
                     {"resets", t.resets}});
}

Duration Rollout::Left(SteadyTime now) const {
  return paused_ ? left_ : std::max(Duration(0), std::chrono::duration_cast<Duration>(due_ - now));
}

bool Rollout::Pause(SteadyTime now) {
  if (paused_) return false;
  left_ = Left(now);
  paused_ = true;
  return true;
}

bool Rollout::MayAdvance() {
  if (paused_) advance_on_resume_ = true;
  return !paused_;
}

Rollout::AfterResume Rollout::Resume(SteadyTime now) {
  if (!paused_) return AfterResume::kNothing;
  paused_ = false;
  due_ = now + left_;
  if (std::exchange(advance_on_resume_, false)) return AfterResume::kNextStep;
  return checking_ ? AfterResume::kNothing : AfterResume::kRestartTimer;
}

nlohmann::json Rollout::Describe(SteadyTime now, GenerationTraffic new_now, GenerationTraffic old_total) const {
  GenerationTraffic t = StepTraffic(new_now);
  return {{"step", step_ + 1},
          {"steps", config_.steps},
          {"weight", weight()},
          {"paused", paused_},
          {"checking", checking_},
          {"step_left_s", Seconds(Left(now))},
          {"this_step", {{"connections", t.connections}, {"failures", t.failures}, {"resets", t.resets}}},
          {"old_generation_connections", old_total.connections},
          {"steps_passed", passed_}};
}

}  // namespace baton
