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
  CHECK(spec.set_listen_pid);
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

TEST_CASE("sd_notify STATUS is kept per worker, READY from an unknown pid changes nothing") {
  Harness h(NotifyConfig(1));
  h.Begin("v1", HandoverKind::kStart);
  h.service->OnNotify(4242, ParseNotifyMessage("READY=1"));
  CHECK_FALSE(h.outcome);
  h.service->OnNotify(1000, ParseNotifyMessage("STATUS=warming caches"));
  CHECK(h.service->Describe()["generations"][0]["workers"][0]["status"] == "warming caches");
}

TEST_CASE("stop drains every worker and suppresses restarts, a handover starts it again") {
  Harness h(NotifyConfig(2));
  h.StartLive("v1");
  auto pids = h.PidsOf("v1");
  bool stopped = false;
  REQUIRE(h.service->Stop([&] { stopped = true; }).ok());
  CHECK(h.service->StateName() == "stopping");
  for (int pid : pids) CHECK(h.launcher.Signalled(pid, SIGTERM));
  for (int pid : pids) h.launcher.Exit(pid);
  CHECK(stopped);
  CHECK(h.service->StateName() == "stopped");
  h.clock.Advance(60s);
  CHECK(h.PidsOf("v1").empty());
  h.Begin("v1", HandoverKind::kStart);
  h.ReadyAll("v1");
  REQUIRE(h.outcome->promoted);
  CHECK(h.service->StateName() == "running");
}

TEST_CASE("scale grows and shrinks the live generation, and is refused mid-handover") {
  Harness h(NotifyConfig(2));
  h.StartLive("v1");
  REQUIRE(h.service->Scale(4).ok());
  CHECK(h.PidsOf("v1").size() == 4);
  auto pids = h.PidsOf("v1");
  REQUIRE(h.service->Scale(1).ok());
  int stopped = 0;
  for (int pid : pids) stopped += h.launcher.Signalled(pid, SIGTERM);
  CHECK(stopped == 3);
  CHECK_FALSE(h.launcher.SignalledAny(pids[0]));  // the oldest stays
  CHECK(h.service->Scale(0).code() == ErrorCode::kInvalidArgument);
  h.Begin("v2");
  CHECK(h.service->Scale(3).code() == ErrorCode::kConflict);
  h.ReadyAll("v2");
  CHECK(h.PidsOf("v2").size() == 1);  // later handovers start the new count
}

TEST_CASE("signal reaches every running worker's process group") {
  Harness h(NotifyConfig(2));
  h.StartLive("v1");
  CHECK(h.service->Signal(SIGHUP) == 2);
  for (int pid : h.PidsOf("v1")) CHECK(h.launcher.Signalled(pid, SIGHUP));
}

// Proxy mode: the worker binds a private port batond picked, and batond routes to it.
ServiceConfig ProxyConfig_() {
  ServiceConfig c = NotifyConfig(2);
  c.command = {"server", "--version", "{version}", "--port", "{port:web}"};
  ListenerConfig web;
  web.name = "web";
  web.mode = ListenMode::kProxy;
  c.listeners.push_back(web);
  c.stop.drain_timeout = 20s;
  return c;
}

// A handover in proxy mode: every worker passes its backend port check and notifies.
void ReadyProxied(Harness& h, const std::string& version, HandoverKind kind = HandoverKind::kUpgrade) {
  h.Begin(version, kind);
  while (!h.probes.attempts.empty()) h.probes.CompleteNext(Status::Ok());
  h.ReadyAll(version);
}

void ProxiedHandover(Harness& h, const std::string& version, HandoverKind kind = HandoverKind::kUpgrade) {
  ReadyProxied(h, version, kind);
  REQUIRE(h.outcome);
  REQUIRE(h.outcome->promoted);
}

TEST_CASE("proxy mode: each worker gets its own backend port as {port:NAME} and PORT, checked by a TCP probe") {
  Harness h(ProxyConfig_());
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
  Harness h(ProxyConfig_());
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
  Harness h(ProxyConfig_());
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
  Harness h(ProxyConfig_());
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
  ServiceConfig c = ProxyConfig_();
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
  Harness h(ProxyConfig_());
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

TEST_CASE("FD store: stored descriptors follow the listeners in the next workers, replace, remove, limit") {
  ServiceConfig c = NotifyConfig(1);
  c.fd_store_max = 2;
  Harness h(c);
  h.Begin("v1", HandoverKind::kStart);
  int v1 = h.PidsOf("v1")[0];
  auto stored = [&](const std::string& text, int fd_count) {
    NotifyMessage m = ParseNotifyMessage(text);
    for (int i = 0; i < fd_count; ++i) m.fds.push_back(std::make_shared<UniqueFd>(::dup(2)));
    h.service->OnNotify(v1, m);
  };
  stored("FDSTORE=1\nFDNAME=cache", 1);
  stored("FDSTORE=1\nFDNAME=cache", 1);  // replaces the first
  stored("FDSTORE=1\nFDNAME=jobs", 1);
  stored("FDSTORE=1\nFDNAME=extra", 1);  // beyond fd_store_max
  h.Ready(v1);
  REQUIRE(h.outcome->promoted);
  CHECK(h.service->Describe()["fd_store"] == nlohmann::json::array({"cache", "jobs"}));
  CHECK(h.HasEvent(EventType::kFdStore));

  h.Begin("v2");
  const LaunchSpec& spec = h.launcher.launched.back().spec;
  REQUIRE(spec.fds.size() == 3);  // the listener, then the store
  CHECK(spec.fds[0] == 7);
  std::map<std::string, std::string> env(spec.env.begin(), spec.env.end());
  CHECK(env["LISTEN_FDS"] == "3");
  CHECK(env["LISTEN_FDNAMES"] == "http:cache:jobs");

  int v2 = h.PidsOf("v2")[0];
  h.service->OnNotify(v2, ParseNotifyMessage("FDSTOREREMOVE=1\nFDNAME=cache"));
  CHECK(h.service->Describe()["fd_store"] == nlohmann::json::array({"jobs"}));
  // Without FDSTORE=1 nothing is kept.
  NotifyMessage plain = ParseNotifyMessage("STATUS=x\nFDNAME=other");
  h.service->OnNotify(v2, plain);
  CHECK(h.service->Describe()["fd_store"].size() == 1);
}

namespace {

// Carries `from`'s service over to a fresh harness, as a self-upgrade does: the processes
// `carried` are known to the new launcher and may be reattached.
std::unique_ptr<Harness> CarryOver(Harness& from, const std::vector<int>& carried, ServiceConfig config) {
  REQUIRE(from.service->CheckQuiet().ok());
  std::vector<int> keep;
  nlohmann::json snapshot = from.service->Snapshot(&keep);
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

namespace {

ServiceConfig ProgressiveConfig() {
  ServiceConfig c = ProxyConfig_();
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
