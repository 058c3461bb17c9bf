// The real batond with real workers on loopback: handovers under load, failures,
// rollback, drain escalation, crash restart, resume after restart.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

bool HasVersion(Daemon& d, const std::string& version) { return d.Service("web")["version"] == version; }

}  // namespace

TEST_CASE("upgrades under continuous load refuse and fail no connection") {
  Daemon d(WebService(2));
  d.Start();
  int port = d.Port("web");
  REQUIRE(port > 0);
  Load load(port, 4);
  REQUIRE(load.WaitForVersion("v1"));
  for (int i = 0; i < 10; ++i) {
    std::string v = i % 2 == 0 ? "v2" : "v1";
    auto r = d.Ctl({"upgrade", "web", "--version", v});
    INFO(r.output << d.Log());
    REQUIRE(r.exit_code == 0);
    REQUIRE(load.WaitForVersion(v));
  }
  // A broken release in the middle of it all changes nothing for the clients.
  auto bad = d.Ctl({"upgrade", "web", "--version", "v3", "--", TEST_WORKER_PATH, "--exit-at-start", "1"});
  CHECK(bad.exit_code == 1);
  REQUIRE(load.WaitForVersion("v1"));
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  CHECK(load.ok() > 100);
  CHECK(load.versions().count("v3") == 0);
}

TEST_CASE("a rolling handover in batches loses no request") {
  Daemon d(WebService(4, "[service.web.rollout]\nbatch = 2\n"));
  d.Start();
  Load load(d.Port("web"), 4);
  REQUIRE(load.WaitForVersion("v1"));
  auto r = d.Ctl({"upgrade", "web", "--version", "v2"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("batch_ready"));
  REQUIRE(load.WaitForVersion("v2"));
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  CHECK(d.WorkerPids("web").size() == 4);
}

TEST_CASE("a second handover while one is in progress is refused with a conflict") {
  Daemon d(WebService(1));
  d.Start();
  std::thread slow([&] {
    d.Ctl({"upgrade", "web", "--version", "v2", "--", TEST_WORKER_PATH, "--version", "v2", "--notify", "--ready-delay",
           "1500"});
  });
  REQUIRE(WaitFor([&] { return d.Service("web").contains("handover"); }));
  auto r = d.Api("POST", "/v1/services/web/upgrade", R"({"version": "v3"})");
  CHECK(r.status == 409);
  CHECK_THAT(r.body["error"]["message"].get<std::string>(), Catch::Contains("v2"));
  slow.join();
  CHECK(d.Service("web")["version"] == "v2");
}

TEST_CASE("a failed readiness keeps the old version serving, and the reason reaches batonctl") {
  Daemon d(WebService(1));
  d.Start();
  int port = d.Port("web");
  int old_pid = d.WorkerPids("web")[0];

  SECTION("never ready") {
    auto r = d.Ctl({"upgrade", "web", "--version", "v2", "--", TEST_WORKER_PATH, "--version", "v2"});
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("not ready within 5s") && Catch::Contains("READY=1"));
    CHECK_THAT(r.output, Catch::Contains("v1 is still serving"));
    CHECK(d.Api("GET", "/v1/services/web/history").body["releases"].back()["outcome"] == "failed");
  }
  SECTION("exits at once, with its stderr in the reason") {
    auto r = d.Ctl({"upgrade", "web", "--version", "v2", "--", TEST_WORKER_PATH, "--exit-at-start", "3"});
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("exited with status 3") && Catch::Contains("refusing to start"));
  }
  SECTION("binary does not exist") {
    auto r = d.Ctl({"upgrade", "web", "--version", "v2", "--", "/nonexistent/server"});
    INFO(r.output);
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Catch::Contains("/nonexistent/server"));
  }
  CHECK(HasVersion(d, "v1"));
  CHECK(d.WorkerPids("web")[0] == old_pid);
  CHECK_THAT(HttpGet(port), Catch::Contains("version=v1"));
}

TEST_CASE("rollback returns to the previous release, or to a named one") {
  Daemon d(WebService(1));
  d.Start();
  int port = d.Port("web");
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v3"}).exit_code == 0);
  CHECK_THAT(HttpGet(port), Catch::Contains("version=v3"));
  auto r = d.Ctl({"rollback", "web"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(HttpGet(port), Catch::Contains("version=v2"));
  REQUIRE(d.Ctl({"rollback", "web", "--to", "v1"}).exit_code == 0);
  CHECK_THAT(HttpGet(port), Catch::Contains("version=v1"));
  auto missing = d.Ctl({"rollback", "web", "--to", "v9"});
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.output, Catch::Contains("v9"));
}

TEST_CASE("a crash within bake_time rolls back on its own") {
  Daemon d(R"(
[service.web]
command = ["@WORKER@", "--version", "{version}", "--notify"]
version = "v1"
bake_time = "30s"
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.ready]
notify = true
)");
  d.Start();
  int port = d.Port("web");
  auto r = d.Ctl({"upgrade", "web", "--version", "v2", "--", TEST_WORKER_PATH, "--version", "v2", "--notify",
                  "--crash-after", "300"});
  REQUIRE(r.exit_code == 0);
  bool rolled_back = WaitFor([&] {
    auto s = d.Service("web");
    return s["version"] == "v1" && s["last_handover"]["kind"] == "automatic rollback";
  });
  INFO(d.Log());
  REQUIRE(rolled_back);
  CHECK_THAT(HttpGet(port), Catch::Contains("version=v1"));
}

TEST_CASE("draining escalates to SIGKILL after stop.timeout") {
  Daemon d(R"(
[service.web]
command = ["@WORKER@", "--version", "{version}", "--notify", "--ignore-term"]
bake_time = "0s"
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.ready]
notify = true
[service.web.stop]
timeout = "500ms"
)");
  d.Start();
  int old_pid = d.WorkerPids("web")[0];
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  CHECK(WaitFor([&] { return !ProcessAlive(old_pid); }, 5s));
  CHECK(WaitFor([&] { return d.Log().find("sending SIGKILL") != std::string::npos; }, 2s));
  auto recent = d.Service("web")["recent_generations"];
  REQUIRE(recent.size() >= 1);
  CHECK(recent[0]["state"] == "exited");
}

TEST_CASE("a crashing worker is restarted with backoff, then the service goes fatal") {
  Daemon d(R"(
[service.web]
command = ["@WORKER@", "--version", "{version}", "--crash-after", "300"]
bake_time = "0s"
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.restart]
backoff = "100ms"
max_failures = 3
)");
  d.Start();
  int first_pid = d.WorkerPids("web")[0];
  CHECK(WaitFor([&] {
    auto pids = d.WorkerPids("web");
    return !pids.empty() && pids[0] != first_pid;
  }));
  bool fatal = WaitFor([&] { return d.Service("web")["state"] == "fatal"; });
  auto s = d.Service("web");
  INFO(s.dump(2));
  REQUIRE(fatal);
  CHECK_THAT(s["fatal_reason"].get<std::string>(), Catch::Contains("exited with status 3") &&
                                                       Catch::Contains("quick failures") &&
                                                       Catch::Contains("crashing as asked"));
  CHECK(s["generations"][0]["workers"][0]["restarts"] == 3);
  // A fixed release brings it back.
  auto r = d.Ctl({"upgrade", "web", "--version", "v2", "--", TEST_WORKER_PATH, "--version", "v2"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(d.Service("web")["state"] == "running");
}

TEST_CASE("a restarted batond resumes the last promoted release") {
  Daemon d(WebService(1));
  d.Start();
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  auto failed = d.Ctl({"upgrade", "web", "--version", "v3", "--", TEST_WORKER_PATH, "--exit-at-start", "1"});
  REQUIRE(failed.exit_code == 1);
  int old_pid = d.WorkerPids("web")[0];
  REQUIRE(d.Stop() == 0);
  CHECK_FALSE(ProcessAlive(old_pid));
  d.Start();
  auto s = d.Service("web");
  CHECK(s["version"] == "v2");
  CHECK_THAT(HttpGet(d.Port("web")), Catch::Contains("version=v2"));
  // Generation ids continue; rollback still knows v1.
  CHECK(s["generations"][0]["id"].get<int>() > 3);
  REQUIRE(d.Ctl({"rollback", "web"}).exit_code == 0);
  CHECK(d.Service("web")["version"] == "v1");
}

TEST_CASE("SIGTERM drains every service and exits 0") {
  Daemon d(WebService(2) + R"(
[service.other]
command = ["@WORKER@", "--version", "{version}"]
[service.other.listen]
http = "tcp://127.0.0.1:0"
)");
  d.Start();
  auto pids = d.WorkerPids("web");
  auto other = d.WorkerPids("other");
  pids.insert(pids.end(), other.begin(), other.end());
  REQUIRE(pids.size() == 3);
  CHECK(d.Stop() == 0);
  for (int pid : pids) CHECK_FALSE(ProcessAlive(pid));
  CHECK_THAT(d.Log(), Catch::Contains("stopping on SIGTERM"));
}

TEST_CASE("probes reach the worker being checked through its private {probe_port}") {
  Daemon d(R"(
[service.web]
command = ["@WORKER@", "--version", "{version}", "--probe-port", "{probe_port}", "--ready-delay", "300"]
bake_time = "0s"
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.ready]
http = "http://127.0.0.1:{probe_port}/health"
tcp = true
exec = ["/bin/sh", "-c", "test -n \"$BATON_PROBE_PORT\""]
timeout = "3s"
interval = "50ms"
)");
  d.Start();
  auto s = d.Service("web");
  CHECK(s["state"] == "running");
  CHECK(s["generations"][0]["workers"][0]["probe_port"].get<int>() > 0);
  // A release that never binds its probe port fails on the probe, naming it.
  auto r = d.Ctl({"upgrade", "web", "--version", "v2", "--", TEST_WORKER_PATH, "--version", "v2"});
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("not ready within 3s") && Catch::Contains("Connection refused") &&
                           Catch::Contains("/health"));
  CHECK(d.Service("web")["version"] == "initial");
}

TEST_CASE("READY=1 from a descendant of the worker counts for the worker") {
  Daemon d(R"(
[service.web]
command = ["/bin/sh", "-c", "python3 -c 'import os, socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b\"READY=1\", os.environ[\"NOTIFY_SOCKET\"])'; exec sleep 60"]
[service.web.ready]
notify = true
timeout = "5s"
)");
  d.Start();
  auto s = d.Service("web");
  INFO(s.dump(2) << d.Log());
  CHECK(s["state"] == "running");
  CHECK(s["last_handover"]["promoted"] == true);
}
