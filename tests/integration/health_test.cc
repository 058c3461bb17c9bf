// The health endpoint on a real batond: what load balancers see as a service stops and
// starts, and that its socket stays open across a self-upgrade.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

std::string HealthAt(int port) { return "health = \"tcp://127.0.0.1:" + std::to_string(port) + "\""; }

}  // namespace

TEST_CASE("health: /livez and /readyz follow the services, and nothing else is served") {
  int port = FreePort();
  Daemon d(WebService(2), HealthAt(port));
  d.Start();
  CHECK(HttpRequest(port, "GET", "/livez").status == 200);
  HttpResponse ready = HttpRequest(port, "GET", "/readyz");
  INFO(ready.body);
  CHECK(ready.status == 200);
  CHECK(nlohmann::json::parse(ready.body)["services"]["web"] == "running");
  CHECK(HttpRequest(port, "GET", "/readyz/web").status == 200);
  CHECK(HttpRequest(port, "GET", "/readyz/nosuch").status == 404);
  CHECK(HttpRequest(port, "HEAD", "/readyz").status == 200);
  CHECK(HttpRequest(port, "POST", "/readyz").status == 405);
  CHECK(HttpRequest(port, "GET", "/v1/status").status == 404);
  CHECK(d.Api("GET", "/v1/status").body["daemon"]["health"] == "tcp://127.0.0.1:" + std::to_string(port));

  REQUIRE(d.Ctl({"stop", "web"}).exit_code == 0);
  HttpResponse stopped = HttpRequest(port, "GET", "/readyz");
  CHECK(stopped.status == 503);
  CHECK(nlohmann::json::parse(stopped.body)["reason"] == "service 'web' has no live generation (stopped)");
  CHECK(HttpRequest(port, "GET", "/readyz/web").status == 503);
  CHECK(HttpRequest(port, "GET", "/livez").status == 200);
  REQUIRE(d.Ctl({"start", "web"}).exit_code == 0);
  CHECK(HttpRequest(port, "GET", "/readyz").status == 200);
}

TEST_CASE("health: checks during self-upgrades are all answered 200, from the same socket") {
  int port = FreePort();
  Daemon d(WebService(1), HealthAt(port));
  d.Start();
  std::atomic<bool> done{false};
  std::atomic<int> answered{0}, failed{0};
  std::string last_error;
  std::thread checker([&] {
    while (!done) {
      std::string error;
      HttpResponse r = HttpRequest(port, "GET", "/readyz", &error);
      if (r.status == 200) {
        ++answered;
      } else {
        ++failed;
        last_error = r.status ? "HTTP " + std::to_string(r.status) + ": " + r.body : error;
      }
    }
  });
  for (int i = 0; i < 3; ++i) {
    auto r = d.Ctl({"self-upgrade"});
    INFO(r.output);
    CHECK(r.exit_code == 0);
  }
  // At least a few checks after the last self-upgrade, from the new program.
  int before = answered;
  CHECK(WaitFor([&] { return answered >= before + 5; }));
  done = true;
  checker.join();
  INFO(last_error);
  CHECK(failed == 0);
  CHECK(answered > 10);
}
