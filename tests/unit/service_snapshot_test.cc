// Carrying a service over a self-upgrade (service_snapshot.cc): Snapshot, then Restore in a
// fresh service.
#include <catch2/catch.hpp>

#include <set>

#include <unistd.h>

#include "tests/unit/service_harness.h"

using namespace baton;
using namespace baton::testing;
using namespace std::chrono_literals;

namespace {

// Carries `from`'s service over to a fresh harness, as a self-upgrade does: the processes
// `carried` are known to the new launcher and may be reattached.
std::unique_ptr<Harness> CarryOver(Harness& from, const std::vector<int>& carried, ServiceConfig config) {
  REQUIRE(from.service->CheckQuiet().ok());
  std::vector<int> keep;
  ServiceSnapshot snapshot = from.service->Snapshot(&keep);
  auto to = std::make_unique<Harness>(std::move(config));
  to->launcher.carried.insert(carried.begin(), carried.end());
  REQUIRE(to->service->Restore(snapshot).ok());
  return to;
}

}  // namespace

TEST_CASE("self-upgrade: a baking service is carried over with its pids, bake time left and generation numbering") {
  ServiceConfig c = NotifyConfig(2);
  c.bake_time = 30s;
  Harness h(c);
  h.StartLive("v1");
  std::vector<int> v1 = h.PidsOf("v1");
  h.Begin("v2");
  CHECK_THAT(h.service->CheckQuiet().message(), Catch::Contains("in progress"));
  h.ReadyAll("v2");
  CHECK_THAT(h.service->CheckQuiet().message(), Catch::Contains("draining"));
  for (int pid : v1) h.launcher.Exit(pid);
  h.clock.Advance(10s);
  std::vector<int> v2 = h.PidsOf("v2");
  auto next = CarryOver(h, v2, c);
  Harness& h2 = *next;
  REQUIRE(h2.service->live());
  CHECK(h2.service->live()->release.version == "v2");
  CHECK(h2.service->live()->id == 2);
  CHECK(h2.launcher.RunningPids() == v2);  // reattached, nothing spawned
  CHECK(h2.launcher.launched.empty());
  CHECK(h2.service->StateName() == "baking");
  h2.clock.Advance(19s);
  CHECK_FALSE(h2.HasEvent(EventType::kBaked));
  h2.clock.Advance(2s);  // 30 s after the promotion, counted across both programs
  CHECK(h2.HasEvent(EventType::kBaked));
  // Exits of reattached workers reach the new program's table: a restart.
  h2.launcher.Exit(v2[0], ExitInfo{1, 0});
  h2.clock.Advance(5s);
  CHECK(h2.PidsOf("v2").size() == 1);
  h2.Begin("v3");
  CHECK(h2.service->pending_generation() == 3);
}

TEST_CASE("self-upgrade: a worker waiting to restart keeps its backoff, one that cannot be reattached restarts") {
  ServiceConfig c = NotifyConfig(2);
  c.restart.initial_backoff = 4s;
  Harness h(c);
  h.StartLive("v1");
  std::vector<int> pids = h.PidsOf("v1");
  h.launcher.Exit(pids[0], ExitInfo{1, 0});
  h.clock.Advance(1s);
  // The new program knows neither the crashed worker nor, here, the running one.
  auto next = CarryOver(h, {}, c);
  Harness& h2 = *next;
  CHECK(h2.HasEvent(EventType::kCrashed));
  h2.clock.RunDue();
  CHECK(h2.launcher.launched.size() == 1);  // the one not reattached, at once
  h2.clock.Advance(2900ms);
  CHECK(h2.launcher.launched.size() == 1);
  h2.clock.Advance(200ms);  // 4 s after the crash
  CHECK(h2.launcher.launched.size() == 2);
}
