// The handover table and restart policy, driven through a fake clock, a fake launcher and
// a fake probe runner: no processes, no sockets, no sleeps.
#include <catch2/catch.hpp>

#include <set>

#include <unistd.h>

#include "tests/unit/service_harness.h"

using namespace baton;
using namespace baton::testing;
using namespace std::chrono_literals;

TEST_CASE("start: workers get their listeners, placeholders and conventions, promoted once all are ready") {
  Harness h(NotifyConfig(2));
  h.Begin("v1", HandoverKind::kStart);
  REQUIRE(h.launcher.launched.size() == 2);
  const LaunchSpec& spec = h.launcher.launched[0].spec;
  CHECK(spec.argv == std::vector<std::string>{"server", "--version", "v1", "--fd", "3"});
  CHECK(spec.fds == std::vector<int>{7});
  CHECK(spec.own_pid_env == std::vector<std::string>{"LISTEN_PID"});
  std::map<std::string, std::string> env(spec.env.begin(), spec.env.end());
  CHECK(env["LISTEN_FDS"] == "1");
  CHECK(env["LISTEN_FDNAMES"] == "http");
  CHECK(env["EINHORN_FD_0"] == "3");
  CHECK(env["NGINX"] == "3;");
  CHECK(env["NOTIFY_SOCKET"] == "/run/notify.sock");

  h.Ready(1000);
  CHECK_FALSE(h.outcome);  // one of two is not enough
  h.Ready(1001);
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
  CHECK(h.service->live()->release.version == "v1");
  CHECK(h.service->StateName() == "running");
}

TEST_CASE("upgrade: the old generation drains only after the new one is ready") {
  Harness h(NotifyConfig(2));
  h.StartLive("v1");
  auto old_pids = h.PidsOf("v1");
  h.Begin("v2");
  REQUIRE(h.PidsOf("v2").size() == 2);
  h.Ready(h.PidsOf("v2")[0]);
  for (int pid : old_pids) CHECK_FALSE(h.launcher.SignalledAny(pid));
  h.Ready(h.PidsOf("v2")[1]);
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
  CHECK(h.outcome->from_version == "v1");
  for (int pid : old_pids) CHECK(h.launcher.Signalled(pid, SIGTERM));
  CHECK(h.service->live()->release.version == "v2");
  for (int pid : old_pids) h.launcher.Exit(pid);
  h.clock.RunDue();
  CHECK(h.service->Describe()["generations"].size() == 1);
  CHECK(h.service->Describe()["recent_generations"][0]["state"] == "exited");
}

TEST_CASE("a new worker that exits before it is ready fails the handover, the old one is untouched") {
  Harness h(NotifyConfig(1));
  h.StartLive("v1");
  int old_pid = h.PidsOf("v1")[0];
  h.Begin("v2");
  int new_pid = h.PidsOf("v2")[0];
  h.launcher.Stderr(new_pid, "fatal: cannot open config.yaml");
  h.launcher.Exit(new_pid, ExitInfo{2, 0});
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  CHECK_THAT(h.outcome->reason, Catch::Contains("exited with status 2"));
  CHECK_THAT(h.outcome->reason, Catch::Contains("cannot open config.yaml"));
  CHECK_FALSE(h.launcher.SignalledAny(old_pid));
  CHECK(h.service->live()->release.version == "v1");
  CHECK(h.results.back().reason == h.outcome->reason);
}

TEST_CASE("a new generation that never becomes ready is stopped at ready.timeout") {
  Harness h(NotifyConfig(1));
  h.StartLive("v1");
  int old_pid = h.PidsOf("v1")[0];
  h.Begin("v2");
  int new_pid = h.PidsOf("v2")[0];
  h.clock.Advance(4900ms);
  CHECK_FALSE(h.outcome);
  h.clock.Advance(200ms);
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  CHECK_THAT(h.outcome->reason, Catch::Contains("not ready within 5s") && Catch::Contains("READY=1"));
  CHECK(h.launcher.Signalled(new_pid, SIGTERM));
  CHECK_FALSE(h.launcher.SignalledAny(old_pid));
  // It ignores SIGTERM: SIGKILL follows after stop.timeout.
  h.clock.Advance(3s);
  CHECK(h.launcher.Signalled(new_pid, SIGKILL));
}

TEST_CASE("one handover at a time: a second request is a conflict naming the first") {
  Harness h(NotifyConfig(1));
  h.StartLive("v1");
  h.Begin("v2");
  Status s = h.service->Handover(Release{"v3", std::nullopt, {}, 0}, HandoverKind::kUpgrade, [](auto&) {});
  CHECK(s.code() == ErrorCode::kConflict);
  CHECK_THAT(s.message(), Catch::Contains("v2"));
  CHECK(h.PidsOf("v3").empty());
}

TEST_CASE("a generation still draining does not block the next handover") {
  Harness h(NotifyConfig(1));
  h.StartLive("v1");
  h.Begin("v2");
  h.ReadyAll("v2");
  REQUIRE(h.outcome->promoted);
  REQUIRE(h.PidsOf("v1").size() == 1);  // v1 still draining
  h.Begin("v3");
  h.ReadyAll("v3");
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
  CHECK(h.service->live()->release.version == "v3");
}

TEST_CASE("draining: SIGKILL to the process group after stop.timeout") {
  Harness h(NotifyConfig(1));
  h.StartLive("v1");
  int old_pid = h.PidsOf("v1")[0];
  h.Begin("v2");
  h.ReadyAll("v2");
  CHECK(h.launcher.Signalled(old_pid, SIGTERM));
  h.clock.Advance(2999ms);
  CHECK_FALSE(h.launcher.Signalled(old_pid, SIGKILL));
  h.clock.Advance(1ms);
  CHECK(h.launcher.Signalled(old_pid, SIGKILL));
  h.launcher.Exit(old_pid, ExitInfo{0, SIGKILL});
  CHECK(h.HasEvent(EventType::kKill));
}

TEST_CASE("stop.signal_to main: the stop signal to the main process alone, SIGKILL still to the group") {
  ServiceConfig config = NotifyConfig(1);
  config.stop.signal_group = false;
  Harness h(config);
  h.StartLive("v1");
  int old_pid = h.PidsOf("v1")[0];
  h.Begin("v2");
  h.ReadyAll("v2");
  CHECK(h.launcher.main_signals == std::vector<std::pair<int, int>>{{old_pid, SIGTERM}});
  CHECK_FALSE(h.launcher.Signalled(old_pid, SIGTERM));
  h.clock.Advance(3s);
  CHECK(h.launcher.Signalled(old_pid, SIGKILL));
}

TEST_CASE("an executable that does not exist is refused at once, touching nothing") {
  Harness h(NotifyConfig(1));
  h.StartLive("v1");
  size_t launched = h.launcher.launched.size();
  h.launcher.missing.insert("/opt/missing");
  Status s = h.service->Handover(Release{"v2", std::vector<std::string>{"/opt/missing"}, {}, 0}, HandoverKind::kUpgrade,
                                 [](auto&) {});
  CHECK(s.code() == ErrorCode::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("/opt/missing"));
  h.clock.RunDue();
  CHECK(h.launcher.launched.size() == launched);
  CHECK_FALSE(h.service->handover_in_progress());
}

TEST_CASE("a fork failure fails the handover and keeps the old generation") {
  Harness h(NotifyConfig(1));
  h.StartLive("v1");
  h.launcher.fail_launches = true;
  h.Begin("v2");
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  CHECK_THAT(h.outcome->reason, Catch::Contains("fork"));
  CHECK(h.service->live()->release.version == "v1");
}

TEST_CASE("rolling batches retire old workers batch by batch and halt at the first failed batch") {
  ServiceConfig c = NotifyConfig(4);
  c.rollout.batch = 2;
  Harness h(c);
  h.StartLive("v1");
  auto old_pids = h.PidsOf("v1");
  h.Begin("v2");
  REQUIRE(h.PidsOf("v2").size() == 2);  // first batch only
  h.ReadyAll("v2");
  int stopped = 0;
  for (int pid : old_pids) stopped += h.launcher.Signalled(pid, SIGTERM);
  CHECK(stopped == 2);
  for (int pid : old_pids)
    if (h.launcher.Signalled(pid, SIGTERM)) h.launcher.Exit(pid);
  auto v2 = h.PidsOf("v2");
  REQUIRE(v2.size() == 4);  // second batch started
  // A worker of the second batch fails: the handover halts.
  h.launcher.Exit(v2[3], ExitInfo{1, 0});
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  // The old generation is brought back to full strength; the new one is stopped.
  CHECK(h.PidsOf("v1").size() == 4);
  for (int pid : h.PidsOf("v2")) CHECK(h.launcher.Signalled(pid, SIGTERM));
  CHECK(h.service->live()->release.version == "v1");
}

TEST_CASE("a crash within bake_time rolls back to the previous release automatically") {
  ServiceConfig c = NotifyConfig(1);
  c.bake_time = 30s;
  Harness h(c);
  h.StartLive("v1");
  int v1_pid = h.PidsOf("v1")[0];
  h.Begin("v2");
  h.ReadyAll("v2");
  REQUIRE(h.outcome->promoted);
  CHECK(h.service->StateName() == "baking");
  h.launcher.Exit(v1_pid);  // drained
  h.clock.Advance(10s);
  h.launcher.Exit(h.PidsOf("v2")[0], ExitInfo{0, SIGSEGV});
  h.clock.RunDue();
  CHECK(h.HasEvent(EventType::kRollingBack));
  REQUIRE(h.PidsOf("v1").size() == 1);
  h.ReadyAll("v1");
  CHECK(h.service->live()->release.version == "v1");
  REQUIRE(h.results.size() == 3);
  CHECK(h.results.back().kind == HandoverKind::kAutoRollback);
  CHECK(h.results.back().promoted);
}

TEST_CASE("after bake_time a crash is restarted, not rolled back") {
  ServiceConfig c = NotifyConfig(1);
  c.bake_time = 30s;
  Harness h(c);
  h.StartLive("v1");
  h.Begin("v2");
  h.ReadyAll("v2");
  h.clock.Advance(31s);
  CHECK(h.HasEvent(EventType::kBaked));
  size_t launched = h.launcher.launched.size();
  h.launcher.Exit(h.PidsOf("v2")[0], ExitInfo{1, 0});
  h.clock.Advance(1s);
  CHECK(h.launcher.launched.size() == launched + 1);
  CHECK(h.PidsOf("v2").size() == 1);
  CHECK_FALSE(h.HasEvent(EventType::kRollingBack));
}

TEST_CASE("crash restarts back off exponentially, then the service goes fatal") {
  ServiceConfig c = NotifyConfig(1);
  c.restart.initial_backoff = 1s;
  c.restart.multiplier = 2;
  c.restart.max_backoff = 5s;
  c.restart.max_failures = 3;
  Harness h(c);
  h.StartLive("v1");
  std::vector<Duration> delays;
  for (int i = 0; i < 3; ++i) {
    size_t launched = h.launcher.launched.size();
    h.launcher.Exit(h.PidsOf("v1")[0], ExitInfo{1, 0});
    Duration waited(0);
    while (h.launcher.launched.size() == launched) {
      h.clock.Advance(100ms);
      waited += 100ms;
      REQUIRE(waited < 60s);
    }
    delays.push_back(waited);
  }
  CHECK(delays == std::vector<Duration>{1s, 2s, 4s});
  h.launcher.Exit(h.PidsOf("v1")[0], ExitInfo{1, 0});
  CHECK(h.service->StateName() == "fatal");
  CHECK_THAT(h.service->fatal_reason(), Catch::Contains("4 quick failures"));
  size_t launched = h.launcher.launched.size();
  h.clock.Advance(60s);
  CHECK(h.launcher.launched.size() == launched);
}

TEST_CASE("a worker that ran longer than reset_after starts its failure count afresh") {
  ServiceConfig c = NotifyConfig(1);
  c.restart.initial_backoff = 1s;
  c.restart.reset_after = 10s;
  Harness h(c);
  h.StartLive("v1");
  h.launcher.Exit(h.PidsOf("v1")[0], ExitInfo{1, 0});
  h.clock.Advance(1s);  // restarted after 1s
  h.clock.Advance(20s);
  size_t launched = h.launcher.launched.size();
  h.launcher.Exit(h.PidsOf("v1")[0], ExitInfo{1, 0});
  h.clock.Advance(1s);  // 1s again, not 2s
  CHECK(h.launcher.launched.size() == launched + 1);
}

TEST_CASE("probes are retried every interval until they pass") {
  ServiceConfig c = NotifyConfig(1);
  c.ready.notify = false;
  c.ready.tcp = "127.0.0.1:{probe_port}";
  c.ready.interval = 200ms;
  c.command = {"server", "--version", "{version}", "--probe", "{probe_port}"};
  Harness h(c);
  h.Begin("v1", HandoverKind::kStart);
  REQUIRE(h.probes.attempts.size() == 1);
  CHECK(h.probes.attempts[0].probe.target == "127.0.0.1:40000");
  CHECK(h.launcher.launched[0].spec.argv.back() == "40000");
  h.probes.CompleteNext(Status::Failed("connection refused"));
  CHECK(h.probes.attempts.empty());
  h.clock.Advance(200ms);
  REQUIRE(h.probes.attempts.size() == 1);
  h.probes.CompleteNext(Status::Ok());
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
}

TEST_CASE("a probe still failing at the deadline reports its last error") {
  ServiceConfig c = NotifyConfig(1);
  c.ready.notify = false;
  c.ready.http = "http://127.0.0.1:{probe_port}/health";
  c.ready.interval = 1s;
  Harness h(c);
  h.Begin("v1", HandoverKind::kStart);
  for (int i = 0; i < 5; ++i) {
    if (!h.probes.attempts.empty()) h.probes.CompleteNext(Status::Failed("HTTP 503"));
    h.clock.Advance(1s);
  }
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  CHECK_THAT(h.outcome->reason, Catch::Contains("HTTP 503") && Catch::Contains("http://127.0.0.1:40000/health"));
  CHECK(h.service->StateName() == "down");
}

TEST_CASE("shutdown stops every worker and reports when all have exited") {
  Harness h(NotifyConfig(2));
  h.StartLive("v1");
  bool done = false;
  h.service->Shutdown([&] { done = true; });
  h.clock.RunDue();
  auto pids = h.PidsOf("v1");
  for (int pid : pids) CHECK(h.launcher.Signalled(pid, SIGTERM));
  h.launcher.Exit(pids[0]);
  CHECK_FALSE(done);
  h.launcher.Exit(pids[1]);
  CHECK(done);
  CHECK(h.service->Handover(Release{"v2", std::nullopt, {}, 0}, HandoverKind::kUpgrade, [](auto&) {}).code() ==
        ErrorCode::kFailedPrecondition);
}
