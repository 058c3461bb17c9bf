// batonctl self-upgrade against the real batond: the program is replaced under load with
// the same pid and the same workers; a new program that cannot take over hands back to
// the previous one; a binary that is not a batond, or a busy daemon, is refused.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

nlohmann::json DaemonInfo(Daemon& d) { return d.Api("GET", "/v1/status").body["daemon"]; }

// A batond that cannot take over (its resume check is made to fail), as a binary of
// another build that rejects the state would.
std::string RefusingBinary(const std::string& dir) {
  std::string path = dir + "/refusing-batond";
  std::ofstream(path) << "#!/bin/sh\nBATON_FAILPOINT=resume exec " << BATOND_PATH << " \"$@\"\n";
  ::chmod(path.c_str(), 0755);
  return path;
}

}  // namespace

TEST_CASE("self-upgrade 10 times under load: same pid, same workers, no failed request, a handover works after") {
  Daemon d(WebService(2));
  d.Start();
  INFO(d.Log());
  std::vector<int> workers = d.WorkerPids("web");
  REQUIRE(workers.size() == 2);
  size_t fds_before = DaemonInfo(d)["open_fds"].get<size_t>();
  Load load(d.Port("web"), 6);
  REQUIRE(load.WaitForVersion("v1"));
  for (int i = 1; i <= 10; ++i) {
    auto r = d.Ctl({"self-upgrade"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(r.output.find("pid " + std::to_string(d.pid()) + " kept, 2 worker(s)") != std::string::npos);
  }
  nlohmann::json info = DaemonInfo(d);
  CHECK(info["pid"] == d.pid());
  CHECK(info["self_upgrade"]["attempts"] == 10);
  CHECK(info["self_upgrade"]["last"]["ok"] == true);
  CHECK(d.WorkerPids("web") == workers);
  CHECK(info["open_fds"].get<size_t>() == fds_before);  // nothing leaked across ten programs
  // The logs and the generation numbering carried over too.
  CHECK(d.Service("web")["generations"][0]["id"] == 1);
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  REQUIRE(load.WaitForVersion("v2"));
  for (int pid : workers) CHECK(WaitFor([&] { return !ProcessAlive(pid); }));  // drained by the new program
  // Their last words came through the pipes the tenth program took over with its set.
  for (int pid : workers)
    CHECK(WaitFor([&] {
      return d.Log().find("pid=" + std::to_string(pid) + " err: test_worker v1: stopping on SIGTERM") !=
             std::string::npos;
    }));
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  CHECK(load.versions().count("v1") == 1);
  CHECK(d.Stop() == 0);
}

TEST_CASE("self-upgrade: a new program that cannot take over hands back, nothing is lost") {
  Daemon d(WebService(2));
  d.Start();
  INFO(d.Log());
  std::vector<int> workers = d.WorkerPids("web");
  Load load(d.Port("web"), 4);
  REQUIRE(load.WaitForVersion("v1"));
  auto r = d.Ctl({"self-upgrade", "--binary", RefusingBinary(d.dir())});
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("could not take over") != std::string::npos);
  CHECK(r.output.find("BATON_FAILPOINT=resume") != std::string::npos);
  nlohmann::json info = DaemonInfo(d);
  CHECK(info["pid"] == d.pid());
  CHECK(info["binary"] == BATOND_PATH);  // still the default for the next attempt
  CHECK(d.WorkerPids("web") == workers);
  // The previous program serves, hands over and upgrades itself as before.
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  REQUIRE(load.WaitForVersion("v2"));
  CHECK(d.Ctl({"self-upgrade"}).exit_code == 0);
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
}

TEST_CASE("self-upgrade refuses a binary that is not a batond, and a busy daemon, touching nothing") {
  Daemon d(WebService(1));
  d.Start();
  INFO(d.Log());
  std::vector<int> workers = d.WorkerPids("web");
  for (const std::string& binary : {std::string("/bin/false"), std::string("/bin/echo"), d.dir() + "/missing"}) {
    auto r = d.Ctl({"self-upgrade", "--binary", binary});
    INFO(binary << ": " << r.output);
    CHECK(r.exit_code == 5);
    CHECK(r.output.find(binary) != std::string::npos);
  }
  CHECK(DaemonInfo(d)["self_upgrade"]["attempts"] == 0);

  // While a handover waits for a slow worker to become ready, the daemon is busy.
  std::thread upgrade([&] {
    d.Ctl({"upgrade", "web", "--version", "v2", "--", TEST_WORKER_PATH, "--version", "v2", "--notify", "--ready-delay",
           "1500"});
  });
  REQUIRE(WaitFor([&] { return d.Service("web").contains("handover"); }));
  auto busy = d.Ctl({"self-upgrade"});
  INFO(busy.output);
  CHECK(busy.exit_code == 5);
  CHECK(busy.output.find("in progress") != std::string::npos);
  upgrade.join();
  CHECK(d.WorkerPids("web") != workers);  // the handover itself went ahead
  CHECK(DaemonInfo(d)["pid"] == d.pid());
  CHECK(d.Ctl({"self-upgrade"}).exit_code == 0);  // and once quiet, the upgrade goes through
}
