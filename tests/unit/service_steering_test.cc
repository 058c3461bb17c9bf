// The handover table's side of kernel steering, through a fake TrafficSteering: which
// generation new connections go to, and when a replaced generation gets its stop signal.
#include <catch2/catch.hpp>

#include <algorithm>

#include "tests/unit/service_harness.h"

using namespace baton;
using namespace baton::testing;
using namespace std::chrono_literals;

namespace {

// A service whose listener "http" is steered by the kernel (here, by the fake).
ServiceConfig SteeredConfig(int replicas = 2) {
  ServiceConfig c = NotifyConfig(replicas);
  c.listeners.push_back(
      ListenerConfig{"http", *ParseSocketAddress("tcp://127.0.0.1:8080"), 4096, 1, 1, ListenMode::kKernel, {}});
  c.stop.drain_timeout = 30s;
  return c;
}

using Weights = std::vector<GenerationWeight>;

}  // namespace

TEST_CASE("kernel steering: a new generation listens on its own socket and gets nothing until it is ready") {
  FakeSteering steering;
  Harness h(SteeredConfig(), &steering);
  h.StartLive("v1");
  int64_t v1 = h.outcome->generation;
  // Nothing was live: the first generation took the listener's first socket, where clients wait.
  CHECK(steering.opened == std::vector<std::pair<int64_t, bool>>{{v1, true}});
  CHECK(steering.last() == Weights{{v1, 100}});

  // A release that never gets ready: its workers have a socket of their own, and no
  // routing ever names it; the live generation keeps everything.
  h.Begin("v2");
  int64_t v2 = h.service->pending_generation();
  CHECK(steering.opened.back() == std::pair<int64_t, bool>{v2, false});
  REQUIRE(h.PidsOf("v2").size() == 2);
  CHECK(h.launcher.launched.back().spec.fds == std::vector<int>{100 + static_cast<int>(v2)});  // at fd 3
  CHECK(h.launcher.launched.back().spec.argv == std::vector<std::string>{"server", "--version", "v2", "--fd", "3"});
  h.Ready(h.PidsOf("v2")[0]);  // one of two ready: still nothing
  h.clock.Advance(5s);         // ready.timeout
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  CHECK_FALSE(steering.EverRouted(v2));
  CHECK(steering.last() == Weights{{v1, 100}});
  for (int pid : h.PidsOf("v2")) h.launcher.Exit(pid);
  CHECK(std::count(steering.retired.begin(), steering.retired.end(), v2) == 1);  // its socket may go
}

TEST_CASE(
    "kernel steering: promotion sends every new connection to the new generation, and the old one gets "
    "its stop signal once its accept queue is empty") {
  FakeSteering steering;
  Harness h(SteeredConfig(), &steering);
  h.StartLive("v1");
  int64_t v1 = h.outcome->generation;
  std::vector<int> old = h.PidsOf("v1");
  h.Begin("v2");
  steering.queued[v1] = 3;  // connections the old workers have not accepted yet
  h.ReadyAll("v2");
  REQUIRE(h.outcome);
  REQUIRE(h.outcome->promoted);
  int64_t v2 = h.outcome->generation;
  CHECK(steering.last() == Weights{{v2, 100}});
  h.clock.Advance(100ms);
  for (int pid : old) CHECK_FALSE(h.launcher.SignalledAny(pid));  // still taking its queue
  CHECK(steering.released.empty());
  steering.queued[v1] = 0;
  h.clock.Advance(10ms);
  for (int pid : old) CHECK(h.launcher.Signalled(pid, SIGTERM));
  CHECK(steering.released == std::vector<int64_t>{v1});  // with its stop signal, not before
  for (int pid : old) h.launcher.Exit(pid);
  CHECK(std::count(steering.retired.begin(), steering.retired.end(), v1) == 1);
  CHECK(h.HasEvent(EventType::kDrained));
}

TEST_CASE("kernel steering: an old generation that never empties its queue is stopped at stop.drain_timeout") {
  FakeSteering steering;
  ServiceConfig c = SteeredConfig(1);
  c.stop.drain_timeout = 2s;
  Harness h(c, &steering);
  h.StartLive("v1");
  int64_t v1 = h.outcome->generation;
  int old = h.PidsOf("v1")[0];
  h.Begin("v2");
  steering.queued[v1] = 1;
  h.ReadyAll("v2");
  h.clock.Advance(1999ms);
  CHECK_FALSE(h.launcher.SignalledAny(old));
  h.clock.Advance(1ms);
  CHECK(h.launcher.Signalled(old, SIGTERM));
  CHECK(h.HasEvent(EventType::kDrainTimeout));
}

TEST_CASE("kernel steering: progressive steps become weights, and an abort gives everything back") {
  FakeSteering steering;
  ServiceConfig c = SteeredConfig(1);
  c.rollout.progressive = true;
  c.rollout.steps = {10, 50, 100};
  c.rollout.step_time = 10s;
  Harness h(c, &steering);
  h.StartLive("v1");
  int64_t v1 = h.outcome->generation;
  h.Begin("v2");
  int64_t v2 = h.service->pending_generation();
  h.ReadyAll("v2");
  CHECK(steering.last() == Weights{{v1, 90}, {v2, 10}});
  h.clock.Advance(10s);
  CHECK(steering.last() == Weights{{v1, 50}, {v2, 50}});
  h.clock.Advance(10s);
  CHECK(steering.last() == Weights{{v2, 100}});
  h.clock.Advance(10s);
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
  CHECK(steering.last() == Weights{{v2, 100}});

  h.Begin("v3");
  int64_t v3 = h.service->pending_generation();
  h.ReadyAll("v3");
  CHECK(steering.last() == Weights{{v2, 90}, {v3, 10}});
  REQUIRE(h.service->Abort("operator said so").ok());
  CHECK(steering.last() == Weights{{v2, 100}});
}

TEST_CASE("kernel steering: a generation whose socket cannot be opened is refused at once, touching nothing") {
  FakeSteering steering;
  Harness h(SteeredConfig(), &steering);
  h.StartLive("v1");
  size_t launched = h.launcher.launched.size();
  steering.fail_open = true;
  Status s =
      h.service->Handover(Release{"v2", std::nullopt, {}, 0}, HandoverKind::kUpgrade, [](const HandoverResult&) {});
  CHECK_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("Address already in use"));
  h.clock.RunDue();
  CHECK(h.launcher.launched.size() == launched);
  CHECK_FALSE(h.service->handover_in_progress());
}

TEST_CASE(
    "kernel steering: a stopped service sends new connections nowhere, and its next start takes the first socket") {
  FakeSteering steering;
  Harness h(SteeredConfig(1), &steering);
  h.StartLive("v1");
  bool stopped = false;
  REQUIRE(h.service->Stop([&] { stopped = true; }).ok());
  CHECK(steering.last().empty());
  for (int pid : h.PidsOf("v1")) h.launcher.Exit(pid);
  h.clock.RunDue();
  CHECK(stopped);
  h.Begin("v1", HandoverKind::kStart);
  CHECK(steering.opened.back().second);  // the anchor again
}
