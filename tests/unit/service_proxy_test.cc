// Proxy mode in Service: backend ports, routing, and the drain of proxied connections.
#include <catch2/catch.hpp>

#include <set>

#include <unistd.h>

#include "tests/unit/service_harness.h"

using namespace baton;
using namespace baton::testing;
using namespace std::chrono_literals;

TEST_CASE("proxy mode: each worker gets its own backend port as {port:NAME} and PORT, checked by a TCP probe") {
  Harness h(ProxyServiceConfig());
  h.Begin("v1", HandoverKind::kStart);
  REQUIRE(h.launcher.launched.size() == 2);
  std::set<std::string> ports;
  for (const auto& l : h.launcher.launched) {
    std::map<std::string, std::string> env(l.spec.env.begin(), l.spec.env.end());
    CHECK(l.spec.argv[4] == env["PORT"]);
    ports.insert(env["PORT"]);
  }
  CHECK(ports.size() == 2);
  // Both workers' backend ports are probed; nothing is routable before they are ready.
  REQUIRE(h.probes.attempts.size() == 2);
  CHECK(h.probes.attempts[0].probe.kind == Probe::Kind::kTcp);
  CHECK(h.probes.attempts[0].probe.target == "127.0.0.1:" + h.launcher.launched[0].spec.argv[4]);
  CHECK_FALSE(h.service->Backend("web", 0));
  h.probes.CompleteNext(Status::Ok());
  h.probes.CompleteNext(Status::Ok());
  h.ReadyAll("v1");  // notify is configured too: both checks must pass
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
}

TEST_CASE("proxy mode: backends rotate over the live generation's ready workers only") {
  Harness h(ProxyServiceConfig());
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  int64_t live = h.outcome->generation;
  auto a = h.service->Backend("web", 0), b = h.service->Backend("web", 0), c = h.service->Backend("web", 0);
  REQUIRE((a && b && c));
  CHECK(a->first == live);
  CHECK(a->second != b->second);
  CHECK(a->second == c->second);
  CHECK_FALSE(h.service->Backend("other", 0));

  // A new generation is not routable while it starts, however ready its workers are.
  h.Begin("v2");
  h.probes.CompleteNext(Status::Ok());
  for (int i = 0; i < 4; ++i) CHECK(h.service->Backend("web", 0)->first == live);
  // A crashed live worker is skipped until it is ready again.
  int crashed = h.PidsOf("v1")[0];
  h.launcher.Exit(crashed, ExitInfo{1, 0});
  auto only = h.service->Backend("web", 0);
  for (int i = 0; i < 4; ++i) CHECK(h.service->Backend("web", 0)->second == only->second);
}

TEST_CASE("proxy mode: the old generation is signalled only after its proxied connections close") {
  Harness h(ProxyServiceConfig());
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  int64_t old_gen = h.outcome->generation;
  std::vector<int> old_pids = h.PidsOf("v1");
  h.proxied_open[old_gen] = 3;

  ProxiedHandover(h, "v2");
  CHECK(h.service->Backend("web", 0)->first == h.outcome->generation);
  for (int pid : old_pids) CHECK_FALSE(h.launcher.SignalledAny(pid));
  // The old generation still takes retries of its own connections.
  CHECK(h.service->Backend("web", old_gen)->first == old_gen);

  h.clock.Advance(10s);
  for (int pid : old_pids) CHECK_FALSE(h.launcher.SignalledAny(pid));
  h.proxied_open[old_gen] = 0;
  h.service->OnProxyConnectionsChanged(old_gen);
  for (int pid : old_pids) CHECK(h.launcher.Signalled(pid, SIGTERM));
}

TEST_CASE("proxy mode: stop.drain_timeout ends the wait for connections that stay open") {
  Harness h(ProxyServiceConfig());
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  int64_t old_gen = h.outcome->generation;
  std::vector<int> old_pids = h.PidsOf("v1");
  h.proxied_open[old_gen] = 1;
  ProxiedHandover(h, "v2");
  h.clock.Advance(19s);
  CHECK_FALSE(h.launcher.SignalledAny(old_pids[0]));
  h.clock.Advance(1s);
  for (int pid : old_pids) CHECK(h.launcher.Signalled(pid, SIGTERM));
  CHECK(h.HasEvent(EventType::kDrainTimeout));
}

TEST_CASE("proxy mode: with stop.wait_for_connections off, only unanswered connections delay the stop signal") {
  ServiceConfig c = ProxyServiceConfig();
  c.stop.wait_for_connections = false;  // its stop signal drains gracefully by itself
  Harness h(c);
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  int64_t old_gen = h.outcome->generation;
  h.proxied_open[old_gen] = 5;
  h.proxied_unanswered[old_gen] = 1;  // may still sit in the worker's accept queue
  std::vector<int> old_pids = h.PidsOf("v1");
  ProxiedHandover(h, "v2");
  for (int pid : old_pids) CHECK_FALSE(h.launcher.SignalledAny(pid));
  h.proxied_unanswered[old_gen] = 0;  // answered: the worker has it; 5 keep-alive connections stay open
  h.service->OnProxyConnectionsChanged(old_gen);
  for (int pid : old_pids) CHECK(h.launcher.Signalled(pid, SIGTERM));

  // With nothing unanswered at promotion, the signal goes at once.
  h.proxied_open[h.outcome->generation] = 2;
  std::vector<int> v2_pids = h.PidsOf("v2");
  ProxiedHandover(h, "v3");
  for (int pid : v2_pids) CHECK(h.launcher.Signalled(pid, SIGTERM));
}

TEST_CASE("proxy mode: a failed new generation is never routed to") {
  Harness h(ProxyServiceConfig());
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  int64_t live = h.outcome->generation;
  h.Begin("v2");
  h.launcher.Exit(h.PidsOf("v2")[0], ExitInfo{1, 0});  // e.g. its port was taken
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  int64_t failed = h.outcome->generation;
  CHECK(h.service->Backend("web", 0)->first == live);
  CHECK_FALSE(h.service->Backend("web", failed));
}

TEST_CASE("proxy mode: a worker that lost its port to another process starts again on a fresh one") {
  Harness h(ProxyServiceConfig());
  ProxiedHandover(h, "v1", HandoverKind::kStart);
  h.Begin("v2");
  auto v2 = h.PidsOf("v2");
  REQUIRE(v2.size() == 2);
  // Another process bound the first v2 worker's port before it did: it exits at once.
  int port = 0;
  for (const auto& [k, v] : h.launcher.launched[h.launcher.launched.size() - 2].spec.env)
    if (k == "PORT") port = std::stoi(v);
  REQUIRE(port > 0);
  h.taken_ports.insert(port);
  h.launcher.Exit(v2[0], ExitInfo{1, 0});
  CHECK_FALSE(h.outcome);  // not a failed handover
  CHECK(h.HasEvent(EventType::kRestarting));
  auto again = h.PidsOf("v2");
  REQUIRE(again.size() == 2);
  std::string fresh;
  for (const auto& [k, v] : h.launcher.launched.back().spec.env)
    if (k == "PORT") fresh = v;
  CHECK(fresh != std::to_string(port));
  while (!h.probes.attempts.empty()) h.probes.CompleteNext(Status::Ok());
  h.ReadyAll("v2");
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
  // A worker that exits while its port is free failed by itself: the handover fails.
  h.Begin("v3");
  h.launcher.Exit(h.PidsOf("v3")[0], ExitInfo{1, 0});
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
}
