// The progressive rollout's decisions on their own: weights, the exact proxy split, the
// thresholds, pausing and resuming.
#include <catch2/catch.hpp>

#include "supervisor/handover/rollout.h"

using namespace baton;
using namespace std::chrono_literals;

namespace {

RolloutConfig Steps(std::vector<int> steps) {
  RolloutConfig c;
  c.progressive = true;
  c.steps = std::move(steps);
  c.step_time = 10s;
  return c;
}

const SteadyTime kT0{};

}  // namespace

TEST_CASE("rollout: each step's weight goes to the new generation, the rest stays with the old") {
  Rollout r(Steps({1, 10, 50, 100}), 7, 8);
  r.Begin(0, kT0, {}, {});
  CHECK(r.Weights() == std::vector<GenerationWeight>{{7, 99}, {8, 1}});
  CHECK(r.StepName() == "step 1/4");
  CHECK_FALSE(r.last_step());
  r.Begin(3, kT0, {}, {});
  CHECK(r.Weights() == std::vector<GenerationWeight>{{8, 100}});
  CHECK(r.last_step());
}

TEST_CASE("rollout: the proxy split sends exactly the weight of every 100 connections, spread out") {
  for (int weight : {1, 10, 33, 50, 99}) {
    Rollout r(Steps({weight, 100}), 1, 2);
    r.Begin(0, kT0, {}, {});
    int to_new = 0, longest_run = 0, run = 0;
    for (int i = 0; i < 1000; ++i) {
      bool n = r.TakeForNew();
      to_new += n;
      run = n ? 0 : run + 1;
      longest_run = std::max(longest_run, run);
    }
    INFO("weight " << weight);
    CHECK(to_new == weight * 10);
    CHECK(longest_run <= 100 / weight);  // never bunched: at most one gap's worth in a row
  }
}

TEST_CASE("rollout: thresholds are judged on the step's own figures") {
  RolloutConfig c = Steps({10, 100});
  c.max_connect_failures = 2;
  c.max_resets = 1;
  c.max_error_ratio = 0.1;
  Rollout r(c, 1, 2);
  r.Begin(0, kT0, {100, 5, 5}, {});  // figures from before the step do not count
  CHECK_FALSE(r.Breach({110, 7, 6}, false));
  CHECK_THAT(r.Breach({110, 8, 5}, false).value_or(""), Catch::Contains("3 backend connect failures"));
  CHECK_THAT(r.Breach({110, 5, 7}, false).value_or(""), Catch::Contains("2 connections reset"));
  // 2 errors in 10 connections: only judged once the step has its whole sample.
  CHECK_FALSE(r.Breach({110, 6, 6}, false));
  CHECK_THAT(r.Breach({110, 6, 6}, true).value_or(""), Catch::Contains("above rollout.max_error_ratio"));
  r.Pass({120, 5, 5}, {300, 0, 0});
  CHECK(r.passed().size() == 1);
  CHECK(r.passed()[0]["connections"] == 20);
  CHECK(r.passed()[0]["old_connections"] == 300);
}

TEST_CASE("rollout: a pause freezes the time left and holds a step that ends meanwhile") {
  Rollout r(Steps({10, 100}), 1, 2);
  r.Begin(0, kT0, {}, {});
  CHECK(r.Left(kT0 + 4s) == 6s);
  CHECK(r.Pause(kT0 + 4s));
  CHECK_FALSE(r.Pause(kT0 + 5s));
  CHECK(r.Left(kT0 + 9s) == 6s);
  CHECK(r.Resume(kT0 + 9s) == Rollout::AfterResume::kRestartTimer);
  CHECK(r.Left(kT0 + 10s) == 5s);
  CHECK(r.Resume(kT0 + 10s) == Rollout::AfterResume::kNothing);  // not paused

  // The step ends (its check passed) while paused: held, and Resume moves on.
  CHECK(r.Pause(kT0 + 15s));
  CHECK_FALSE(r.MayAdvance());
  CHECK(r.Resume(kT0 + 15s) == Rollout::AfterResume::kNextStep);
  CHECK(r.MayAdvance());

  // Paused while the check runs: Resume leaves it to the check.
  r.SetChecking(true);
  CHECK(r.Pause(kT0 + 16s));
  CHECK(r.Resume(kT0 + 16s) == Rollout::AfterResume::kNothing);
}
