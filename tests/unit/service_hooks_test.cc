// [service.X.hooks] through the fakes: what runs when, with what environment, and that
// only before_start can stop a handover.
#include <catch2/catch.hpp>

#include <csignal>

#include "supervisor/config/config.h"
#include "tests/unit/service_harness.h"

using namespace baton;
using namespace baton::testing;

namespace {

ServiceConfig Hooked() {
  ServiceConfig c = NotifyConfig(1);
  c.hooks.before_start = {"/hooks/before-start"};
  c.hooks.on_promoted = {"/hooks/promoted", "--verbose"};
  c.hooks.on_failed = {"/hooks/failed"};
  c.hooks.on_rollback = {"/hooks/rollback"};
  c.hooks.before_drain = {"/hooks/before-drain"};
  return c;
}

std::map<std::string, std::string> EnvOf(const Probe& p) { return {p.env.begin(), p.env.end()}; }

// Completes the oldest pending hook, which must be `argv0`; returns its environment.
std::map<std::string, std::string> Complete(Harness& h, const std::string& argv0, Status s = Status::Ok()) {
  REQUIRE_FALSE(h.probes.attempts.empty());
  Probe p = h.probes.attempts.front().probe;
  CHECK(p.kind == Probe::Kind::kExec);
  CHECK(p.argv.front() == argv0);
  h.probes.CompleteNext(std::move(s));
  h.clock.RunDue();
  return EnvOf(p);
}

}  // namespace

TEST_CASE("hooks: before_start runs before any worker, on_promoted and before_drain after, with the facts") {
  Harness h(Hooked());
  h.Begin("v1", HandoverKind::kStart);
  CHECK(h.launcher.launched.empty());  // waiting for before_start
  auto env = Complete(h, "/hooks/before-start");
  CHECK(env["BATON_HOOK"] == "before_start");
  CHECK(env["BATON_SERVICE"] == "web");
  CHECK(env["BATON_VERSION"] == "v1");
  CHECK(env["BATON_FROM_VERSION"].empty());
  REQUIRE(h.launcher.launched.size() == 1);
  h.ReadyAll("v1");
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);
  Complete(h, "/hooks/promoted");

  h.Begin("v2");
  Complete(h, "/hooks/before-start");
  int old = h.PidsOf("v1").at(0);
  h.ReadyAll("v2");
  REQUIRE(h.outcome->promoted);
  // The old generation's stop signal waits for before_drain.
  REQUIRE(h.probes.attempts.size() == 2);
  CHECK_FALSE(h.launcher.SignalledAny(old));
  auto drain = EnvOf(h.probes.attempts.at(0).probe);
  CHECK(drain["BATON_HOOK"] == "before_drain");
  CHECK(drain["BATON_VERSION"] == "v1");
  CHECK(drain["BATON_REASON"] == "replaced by v2");
  Complete(h, "/hooks/before-drain");
  CHECK(h.launcher.Signalled(old, SIGTERM));
  auto promoted = Complete(h, "/hooks/promoted");
  CHECK(promoted["BATON_VERSION"] == "v2");
  CHECK(promoted["BATON_FROM_VERSION"] == "v1");
  CHECK(promoted["BATON_GENERATION"] == std::to_string(h.service->live()->id));
  CHECK(h.service->Describe()["counters"]["hook_failures"] == 0);
}

TEST_CASE("hooks: a failing before_start fails the handover with its reason - other hooks only count") {
  Harness h(Hooked());
  h.Begin("v1", HandoverKind::kStart);
  Complete(h, "/hooks/before-start");
  h.ReadyAll("v1");
  Complete(h, "/hooks/promoted", Status::Failed("exit status 7: webhook unreachable"));
  CHECK(h.service->live()->release.version == "v1");  // promoted all the same
  CHECK(h.HasEvent(EventType::kHookFailed));
  CHECK(h.service->Describe()["counters"]["hook_failures"] == 1);

  h.Begin("v2");
  Complete(h, "/hooks/before-start", Status::Failed("exit status 1: maintenance window"));
  REQUIRE(h.outcome);
  CHECK_FALSE(h.outcome->promoted);
  CHECK(h.outcome->reason == "the before_start hook failed: exit status 1: maintenance window");
  CHECK(h.launcher.launched.size() == 1);  // no v2 worker ever started
  CHECK(h.service->live()->release.version == "v1");
  auto failed = Complete(h, "/hooks/failed");
  CHECK(failed["BATON_REASON"] == h.outcome->reason);
  CHECK(failed["BATON_VERSION"] == "v2");
  CHECK(failed["BATON_FROM_VERSION"] == "v1");
  CHECK(h.service->Describe()["counters"]["hook_failures"] == 2);
}

TEST_CASE("hooks: on_rollback when a rollback begins") {
  Harness h(Hooked());
  h.Begin("v1", HandoverKind::kStart);
  Complete(h, "/hooks/before-start");
  h.ReadyAll("v1");
  Complete(h, "/hooks/promoted");
  h.Begin("v0", HandoverKind::kRollback);
  auto rollback = Complete(h, "/hooks/rollback");
  CHECK(rollback["BATON_VERSION"] == "v0");
  CHECK(rollback["BATON_FROM_VERSION"] == "v1");
  CHECK(rollback["BATON_REASON"] == "rollback");
  Complete(h, "/hooks/before-start");
  CHECK(h.PidsOf("v0").size() == 1);
}

TEST_CASE("hooks in the config: argv arrays and a timeout - anything else is refused with its key") {
  const std::string head = "[service.web]\ncommand = [\"/bin/true\"]\n[service.web.hooks]\n";
  auto c = ParseConfig(head +
                           "before_start = [\"/usr/local/bin/check\", \"--strict\"]\non_promoted = "
                           "[\"curl\", \"-fsS\", \"https://hooks.example/deploy\"]\ntimeout = \"5s\"\n",
                       "baton.toml");
  REQUIRE(c.ok());
  const HooksConfig& hooks = c->services[0].hooks;
  CHECK(hooks.before_start == std::vector<std::string>{"/usr/local/bin/check", "--strict"});
  CHECK(hooks.on_promoted.size() == 3);
  CHECK(hooks.on_fatal.empty());
  CHECK(hooks.timeout == std::chrono::seconds(5));
  CHECK(ParseConfig(head + "on_deploy = [\"x\"]\n", "baton.toml").status().message() ==
        "baton.toml:4:1: service.web.hooks.on_deploy: unknown key");
  CHECK_FALSE(ParseConfig(head + "on_failed = []\n", "baton.toml").ok());
  CHECK_FALSE(ParseConfig(head + "on_failed = \"/bin/echo failed\"\n", "baton.toml").ok());
}
