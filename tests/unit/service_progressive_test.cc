// Progressive handovers (service_progressive.cc, rollout.cc): steps, thresholds, checks,
// and the operator's pause, resume and promote.
#include <catch2/catch.hpp>

#include <set>

#include <unistd.h>

#include "tests/unit/service_harness.h"

using namespace baton;
using namespace baton::testing;
using namespace std::chrono_literals;

namespace {

ServiceConfig ProgressiveConfig() {
  ServiceConfig c = ProxyServiceConfig();
  c.rollout.progressive = true;
  c.rollout.steps = {10, 50, 100};
  c.rollout.step_time = 10s;
  return c;
}

// Routes `n` new connections; returns how many went to `generation`.
int RoutedTo(Harness& h, int64_t generation, int n) {
  int count = 0;
  for (int i = 0; i < n; ++i) {
    auto b = h.service->Backend("web", 0);
    REQUIRE(b);
    if (b->first == generation) ++count;
  }
  return count;
}

}  // namespace

TEST_CASE("progressive: the new generation gets each step's share, then is promoted after the last step") {
  Harness h(ProgressiveConfig());
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  int64_t v1 = h.outcome->generation;
  ReadyProxied(h, "v2");
  CHECK_FALSE(h.outcome);  // ready, but not promoted: step 1 runs
  int64_t v2 = h.service->pending_generation();
  CHECK(h.HasEvent(EventType::kStep));
  CHECK(RoutedTo(h, v2, 1000) == 100);  // exactly 10%
  CHECK(h.service->live()->id == v1);
  h.clock.Advance(10s);
  CHECK(RoutedTo(h, v2, 1000) == 500);
  h.clock.Advance(10s);
  CHECK(RoutedTo(h, v2, 1000) == 1000);
  CHECK_FALSE(h.outcome);
  h.clock.Advance(10s);  // the 100% step observed for its step_time too
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
  CHECK(h.service->live()->id == v2);
  CHECK(RoutedTo(h, v2, 10) == 10);
}

TEST_CASE("progressive: a release given up on finishes the requests it already has before its stop signal") {
  Harness h(ProgressiveConfig());
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  int64_t v1 = h.outcome->generation;
  ReadyProxied(h, "v2");
  int64_t v2 = h.service->pending_generation();
  std::vector<int> pids = h.PidsOf("v2");
  h.proxied_open[v2] = 2;  // requests routed to it during its step, still being answered
  REQUIRE(h.service->Abort("rolled back by the operator").ok());
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  CHECK(RoutedTo(h, v1, 100) == 100);  // every new connection back to v1 at once
  for (int pid : pids) CHECK_FALSE(h.launcher.SignalledAny(pid));
  h.proxied_open[v2] = 0;
  h.service->OnProxyConnectionsChanged(v2);
  for (int pid : pids) CHECK(h.launcher.Signalled(pid, SIGTERM));
  for (int pid : pids) h.launcher.Exit(pid);
  h.clock.RunDue();
  nlohmann::json status = h.service->Describe();
  CHECK(status["recent_generations"][0]["state"] == "failed");
}

TEST_CASE("progressive: a step that breaks a threshold aborts at once, the old generation takes everything back") {
  ServiceConfig c = ProgressiveConfig();
  c.rollout.max_resets = 2;
  Harness h(c);
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  int64_t v1 = h.outcome->generation;
  ReadyProxied(h, "v2");
  int64_t v2 = h.service->pending_generation();
  h.traffic[v2] = {30, 0, 2};
  h.service->OnProxyConnectionsChanged(v2);
  CHECK_FALSE(h.outcome);  // at the limit, not beyond
  h.traffic[v2] = {31, 0, 3};
  h.service->OnProxyConnectionsChanged(v2);
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  CHECK_THAT(h.outcome->reason,
             Catch::Contains("aborted at step 1/3 (10% of new connections)") &&
                 Catch::Contains("3 connections reset by the new workers, more than rollout.max_resets 2"));
  CHECK(RoutedTo(h, v1, 100) == 100);
  for (int pid : h.PidsOf("v2")) CHECK(h.launcher.SignalledAny(pid));
}

TEST_CASE("progressive: the error ratio and the operator's check are judged at each step's end") {
  ServiceConfig c = ProgressiveConfig();
  c.rollout.max_connect_failures = 100;
  c.rollout.max_error_ratio = 0.05;
  c.rollout.check = {"/usr/local/bin/smoke-test", "{version}"};
  Harness h(c);
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  ReadyProxied(h, "v2");
  int64_t v2 = h.service->pending_generation();
  h.traffic[v2] = {100, 4, 0};  // 4%: passes
  h.clock.Advance(10s);
  REQUIRE(h.probes.attempts.size() == 1);  // the check runs before the next step
  CHECK(h.probes.attempts.front().probe.argv == std::vector<std::string>{"/usr/local/bin/smoke-test", "{version}"});
  h.probes.CompleteNext(Status::Ok());
  CHECK(h.HasEvent(EventType::kStepPassed));
  h.traffic[v2] = {300, 20, 0};  // this step: 200 connections, 16 failures: 8%
  h.clock.Advance(10s);
  REQUIRE(h.outcome);
  CHECK_THAT(h.outcome->reason, Catch::Contains("step 2/3 (50% of new connections)") &&
                                    Catch::Contains("error ratio 0.08") && Catch::Contains("200 connections"));
}

TEST_CASE("progressive: pause holds a step, resume carries on, promote skips the rest, a failed check aborts") {
  Harness h(ProgressiveConfig());
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  ReadyProxied(h, "v2");
  int64_t v2 = h.service->pending_generation();
  h.clock.Advance(4s);
  REQUIRE(h.service->Pause().ok());
  h.clock.Advance(60s);
  CHECK(RoutedTo(h, v2, 100) == 10);  // still step 1
  REQUIRE(h.service->Resume().ok());
  h.clock.Advance(5s);
  CHECK(RoutedTo(h, v2, 100) == 10);
  h.clock.Advance(1s);  // 10 s of step 1 in all
  CHECK(RoutedTo(h, v2, 100) == 50);
  REQUIRE(h.service->PromoteNow().ok());
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
  CHECK(h.service->live()->id == v2);
  CHECK_FALSE(h.service->Pause().ok());  // nothing progressive runs now

  ServiceConfig c = ProgressiveConfig();
  c.rollout.check = {"false"};
  Harness h2(c);
  ProxiedHandover(h2, "v1", HandoverKind::kStart);
  ReadyProxied(h2, "v2");
  h2.clock.Advance(10s);
  h2.probes.CompleteNext(Status::Failed("exited with status 1"));
  REQUIRE(h2.outcome);
  CHECK_THAT(h2.outcome->reason, Catch::Contains("rollout.check failed: exited with status 1"));
}

TEST_CASE("progressive: a new worker that exits aborts the handover with its reason") {
  Harness h(ProgressiveConfig());
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  ReadyProxied(h, "v2");
  h.launcher.Exit(h.PidsOf("v2")[0], ExitInfo{0, SIGSEGV});
  REQUIRE(h.outcome);
  CHECK_THAT(h.outcome->reason, Catch::Contains("aborted at step 1/3") && Catch::Contains("killed by SIGSEGV"));
  CHECK(h.service->live()->release.version == "v1");
}
