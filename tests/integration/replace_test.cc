// Replacing workers without a drop, with real processes under load: a hung worker
// (SIGSTOP) found by its health probe or by the sd_notify watchdog, batonctl recycle,
// max_memory and max_age. In the default mode (kernel steering).
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

// The pids of the live generation's workers that are ready.
std::set<int> ReadyPids(Daemon& d) {
  std::set<int> pids;
  d.WorkerPids("web");                       // so that the test's end kills any left behind
  nlohmann::json status = d.Service("web");  // named: a temporary would die before the loop body
  for (const auto& g : status["generations"])
    if (g["state"] == "live")
      for (const auto& w : g["workers"])
        if (w["state"] == "ready") pids.insert(w["pid"].get<int>());
  return pids;
}

// Sockets a process holds besides its listeners (the service's and its probe port): the
// connections it accepted and has not answered. test_worker answers one at a time.
int AcceptedConnections(int pid, int listeners) {
  int sockets = 0;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(fd.path(), ec);
    sockets += !ec && target.string().rfind("socket:", 0) == 0;
  }
  return sockets - listeners;
}

uint64_t Counter(Daemon& d, const char* cause) {
  nlohmann::json status = d.Service("web");
  auto r = status["counters"]["replacements"];
  return r.contains(cause) ? r[cause].get<uint64_t>() : 0;
}

// SIGSTOP on the only worker: it neither answers nor accepts. Only the requests it had
// already taken may fail (with any supervisor they would); every other must not.
void HangedWorkerIsReplaced(Daemon& d, int listeners) {
  d.Start();
  INFO(d.Log());
  Load load(d.Port("web"), 4);
  REQUIRE(load.WaitForVersion("v1"));
  auto before = ReadyPids(d);
  REQUIRE(before.size() == 1);
  int hung = *before.begin();
  REQUIRE(::kill(hung, SIGSTOP) == 0);
  int lost = AcceptedConnections(hung, listeners);
  // A fresh worker takes over; the hung one gets SIGTERM (pending while stopped), then
  // SIGKILL after stop.timeout.
  REQUIRE(WaitFor([&] { return Counter(d, "health") == 1; }, 20s));
  auto after = ReadyPids(d);
  CHECK(after.size() == 1);
  CHECK(after.count(hung) == 0);
  REQUIRE(WaitFor([&] { return ::kill(hung, 0) != 0; }, 20s));
  uint64_t served = load.Report().ok;
  REQUIRE(WaitFor([&] { return load.Report().ok > served + 100; }));  // the fresh worker serves
  load.Stop();
  INFO(load.failures());
  INFO("requests the hung worker had taken: " << lost);
  CHECK(load.failed() <= static_cast<uint64_t>(lost));
  CHECK(d.Ctl({"history", "web"}).output.find("1 health") != std::string::npos);
  auto metrics = d.Ctl({"metrics"}).output;
  CHECK(metrics.find("baton_service_replacements_total{cause=\"health\",service=\"web\"} 1") != std::string::npos);
}

}  // namespace

TEST_CASE("health: a hung worker (SIGSTOP) is replaced by a fresh one under load, without a failed request") {
  Daemon d(WebService(1,
                      "[service.web.health]\nhttp = \"http://127.0.0.1:{probe_port}/healthz\"\n"
                      "interval = \"100ms\"\ntimeout = \"100ms\"\nfailures = 3\n",
                      ", \"--probe-port\", \"{probe_port}\""));
  HangedWorkerIsReplaced(d, 2);
  CHECK(d.Log().find("health check failed 3 time(s) in a row") != std::string::npos);
}

TEST_CASE("watchdog: a worker that stops sending WATCHDOG=1 is replaced under load, without a failed request") {
  Daemon d(WebService(1, "[service.web.health]\nwatchdog = \"300ms\"\n", ", \"--watchdog\""));
  HangedWorkerIsReplaced(d, 1);
  CHECK(d.Log().find("no WATCHDOG=1 within 300ms") != std::string::npos);
}

TEST_CASE("recycle: batonctl recycle replaces every worker, one at a time, under load without a failed request") {
  Daemon d(WebService(3));
  d.Start();
  INFO(d.Log());
  Load load(d.Port("web"), 4);
  REQUIRE(load.WaitForVersion("v1"));
  auto before = ReadyPids(d);
  REQUIRE(before.size() == 3);
  auto r = d.Ctl({"recycle", "web"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("recycling 3 worker(s) of web") != std::string::npos);
  // Never more than one extra worker at a time.
  size_t most = 0;
  REQUIRE(WaitFor(
      [&] {
        nlohmann::json gens = d.Service("web")["generations"];
        size_t running = 0;
        for (const auto& g : gens)
          for (const auto& w : g["workers"]) running += w["pid"].get<int>() != 0 && w["state"] != "stopping";
        most = std::max(most, running);
        return Counter(d, "operator") == 3;
      },
      30s));
  CHECK(most <= 4);
  REQUIRE(WaitFor([&] { return ReadyPids(d).size() == 3; }));
  for (int pid : ReadyPids(d)) CHECK(before.count(pid) == 0);
  CHECK(d.Ctl({"recycle", "nope"}).exit_code != 0);
  uint64_t served = load.Report().ok;
  REQUIRE(WaitFor([&] { return load.Report().ok > served + 100; }));
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  CHECK(d.Ctl({"history", "web"}).output.find("3 operator") != std::string::npos);
}

TEST_CASE("recycle: max_memory and max_age replace workers as they cross the line, under load without a drop") {
  // Every worker holds 24 MiB, above max_memory: each is replaced as soon as it is looked at.
  Daemon d(
      WebService(2, "[service.web.recycle]\nmax_memory = \"16M\"\ninterval = \"200ms\"\n", ", \"--hold-mib\", \"24\""));
  d.Start();
  INFO(d.Log());
  Load load(d.Port("web"), 4);
  REQUIRE(load.WaitForVersion("v1"));
  REQUIRE(WaitFor([&] { return Counter(d, "memory") >= 4; }, 30s));
  CHECK(d.Log().find("above max_memory 16 MiB") != std::string::npos);
  // A reload trades max_memory for max_age: workers now go when 1s old.
  d.WriteConfig(
      WebService(2, "[service.web.recycle]\nmax_age = \"1s\"\ninterval = \"200ms\"\n", ", \"--hold-mib\", \"24\""));
  REQUIRE(d.Ctl({"reload"}).exit_code == 0);
  REQUIRE(WaitFor([&] { return Counter(d, "age") >= 3; }, 30s));
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  CHECK(load.Report().ok > 100);
}
