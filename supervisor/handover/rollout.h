// A progressive rollout under way (rollout.strategy = "progressive"): the new generation
// gets steps[i] percent of new connections for step_time each, while the old one keeps
// the rest; after each step its figures for that step are judged against the thresholds.
// One passive object, used by both ways of sending traffic: the proxy router asks
// TakeForNew for each connection, the kernel steering asks Weights at each change. The
// Service owns it for the length of a handover and does the I/O around it (the step
// timer, the operator's check, events).
//
// Its states:   running --Pause--> paused --Resume--> running
//               running --step ends--> checking (rollout.check) --passes--> next step
//               a step ending while paused is held until Resume
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "supervisor/base/clock.h"
#include "supervisor/config/config.h"
#include "supervisor/handover/steering.h"

namespace baton {

// Proxy traffic routed to one generation so far (progressive rollouts).
struct GenerationTraffic {
  uint64_t connections = 0;
  uint64_t failures = 0;  // connections closed because none of its workers could be reached
  uint64_t resets = 0;    // connections its workers reset, or closed before answering
};

class Rollout {
 public:
  Rollout(RolloutConfig config, int64_t old_gen, int64_t new_gen);

  // Step `step` (0-based) begins now; the generations' traffic so far is its baseline.
  void Begin(int step, SteadyTime now, GenerationTraffic new_now, GenerationTraffic old_now);
  int step() const { return step_; }
  int weight() const { return config_.steps[static_cast<size_t>(step_)]; }
  bool last_step() const { return static_cast<size_t>(step_ + 1) >= config_.steps.size(); }
  std::string StepName() const;  // "step 2/4"
  int64_t new_generation() const { return new_gen_; }

  // Where new connections go: the kernel steering's weights, or, for the proxy router,
  // whether this one goes to the new generation (exactly `weight` of every 100, spread).
  std::vector<GenerationWeight> Weights() const;
  bool TakeForNew();

  // A threshold the step's figures break, described; nullopt while they hold. The error
  // ratio is judged only at the step's end, when it has its whole sample.
  std::optional<std::string> Breach(GenerationTraffic new_now, bool at_end) const;
  // The step passed: its figures go into passed().
  void Pass(GenerationTraffic new_now, GenerationTraffic old_now);
  const nlohmann::json& passed() const { return passed_; }

  // The step timer: when it is due, and how long is left of the step (frozen while paused).
  void Schedule(SteadyTime now, Duration left) { due_ = now + left; }
  Duration Left(SteadyTime now) const;
  bool paused() const { return paused_; }
  bool checking() const { return checking_; }
  void SetChecking(bool checking) { checking_ = checking; }
  // Holds the step; false if it already was. The step's time left stops running.
  bool Pause(SteadyTime now);
  // The step ended: false (and remembered) while paused, so that Resume moves on.
  bool MayAdvance();
  // Carries on: the step's time left runs again from `now`.
  enum class AfterResume { kNothing, kNextStep, kRestartTimer };
  AfterResume Resume(SteadyTime now);

  nlohmann::json Describe(SteadyTime now, GenerationTraffic new_now, GenerationTraffic old_total) const;

 private:
  GenerationTraffic StepTraffic(GenerationTraffic new_now) const;

  RolloutConfig config_;
  int64_t old_gen_, new_gen_;
  int step_ = 0;
  bool paused_ = false;
  bool advance_on_resume_ = false;
  bool checking_ = false;
  GenerationTraffic new_at_step_start_, old_at_step_start_;
  SteadyTime due_{};
  Duration left_{};                                  // while paused
  uint64_t routed_ = 0;                              // proxy: new connections split so far
  nlohmann::json passed_ = nlohmann::json::array();  // figures of the steps passed
};

}  // namespace baton
