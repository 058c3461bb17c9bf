#include <catch2/catch.hpp>

#include "supervisor/config/diff.h"
#include "supervisor/config/reload_plan.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("config diffs name what changed and whether a new generation is needed") {
  ServiceConfig a;
  a.name = "web";
  a.command = {"srv"};
  ServiceConfig b = a;
  CHECK(DiffService(a, b).empty());
  b.replicas = 3;
  b.bake_time = std::chrono::seconds(1);
  auto d = DiffService(a, b);
  CHECK(d.changed == std::vector<std::string>{"replicas", "bake_time"});
  CHECK_FALSE(d.needs_new_generation);
  b.env["A"] = "1";
  CHECK(DiffService(a, b).needs_new_generation);
  ServiceConfig c = a;
  c.listeners.push_back(
      ListenerConfig{"http", *ParseSocketAddress("tcp://127.0.0.1:80"), 4096, 3, 1, ListenMode::kKernel, {}});
  ServiceConfig c_moved = c;
  c_moved.listeners[0].at.line = 9;  // only its place in the file moved
  CHECK(DiffService(c, c_moved).empty());
  CHECK(DiffService(a, c).changed == std::vector<std::string>{"listen"});
  ServiceConfig proxied = c;
  proxied.listeners[0].mode = ListenMode::kProxy;
  CHECK(DiffService(c, proxied).changed == std::vector<std::string>{"listen"});
  ServiceConfig longer_idle = proxied;
  longer_idle.listeners[0].proxy.idle_timeout = 1h;
  CHECK(DiffService(proxied, longer_idle).needs_new_generation);
  longer_idle.stop.drain_timeout = 1s;
  CHECK(DiffService(proxied, longer_idle).changed == std::vector<std::string>{"listen", "stop"});
}

namespace {

Config Parsed(const std::string& text) {
  auto c = ParseConfig(text, "baton.toml");
  REQUIRE(c.ok());
  return std::move(*c);
}

const char* kRunning = R"(
[daemon]
control_socket = "/tmp/b/ctl.sock"
[service.web]
command = ["srv"]
listen.http = "tcp://127.0.0.1:18080"
[service.worker]
command = ["work"]
[service.old]
command = ["old"]
)";

}  // namespace

TEST_CASE("a reload plan names what is added, removed, changed and kept, without a daemon") {
  Config running = Parsed(kRunning);
  Config next = Parsed(R"(
[daemon]
control_socket = "/tmp/elsewhere.sock"
[service.web]
command = ["srv"]
replicas = 3
listen.http = "tcp://127.0.0.1:18081"
[service.worker]
command = ["work"]
[service.new]
command = ["new"]
)");
  ReloadPlan plan = PlanReload(running, next);
  CHECK(plan.added == std::vector<std::string>{"new"});
  CHECK(plan.removed == std::vector<std::string>{"old"});
  CHECK(plan.unchanged == std::vector<std::string>{"worker"});
  REQUIRE(plan.changed.size() == 1);
  const ServiceChange& web = plan.changed[0];
  CHECK(web.service == "web");
  CHECK(web.diff.changed == std::vector<std::string>{"listen", "replicas"});
  CHECK(web.relisten());
  CHECK(web.resize());
  CHECK(web.diff.needs_new_generation);
  // Where batond listens for control cannot move under it: kept, with a warning.
  CHECK(plan.next.daemon.control_socket == "/tmp/b/ctl.sock");
  REQUIRE(plan.warnings.size() == 1);
  CHECK(plan.warnings[0].find("control_socket") != std::string::npos);
}

TEST_CASE("a reload plan compares with the service as it runs, not as the file said") {
  Config running = Parsed(kRunning);
  for (auto& svc : running.services)
    if (svc.name == "worker") svc.replicas = 4;  // scaled at run time
  Config next = Parsed(kRunning);
  ReloadPlan plan = PlanReload(running, next);
  REQUIRE(plan.changed.size() == 1);
  CHECK(plan.changed[0].service == "worker");
  CHECK(plan.changed[0].diff.changed == std::vector<std::string>{"replicas"});
  CHECK_FALSE(plan.changed[0].diff.needs_new_generation);
  CHECK_FALSE(plan.changed[0].relisten());

  Config same = Parsed(kRunning);
  plan = PlanReload(same, Parsed(std::string("\n\n") + kRunning));  // every table moved down two lines
  CHECK(plan.changed.empty());
  CHECK(plan.unchanged.size() == 3);
  CHECK(plan.warnings.empty());
}
