// Liveness after promotion and graceful recycling: [health] and [recycle] in the config,
// the health check's judgement, which worker a recycle picks, and the Service replacing
// a worker without a gap: the fresh one must be ready before the old one is signalled.
#include <catch2/catch.hpp>

#include "supervisor/config/config_reader.h"
#include "supervisor/handover/launch_spec.h"
#include "supervisor/handover/recycle_policy.h"
#include "supervisor/health/liveness.h"
#include "supervisor/process/process_memory.h"
#include "tests/unit/service_harness.h"

using namespace baton;
using namespace baton::testing;

namespace {

Result<Config> WithTables(const std::string& tables) {
  return ParseConfig("[service.web]\ncommand = [\"/bin/true\"]\n" + tables, "baton.toml");
}

std::string ErrorOf(const std::string& tables) {
  auto c = WithTables(tables);
  return c.ok() ? "" : c.status().message();
}

ServiceConfig WithHealth(int replicas) {
  ServiceConfig c = NotifyConfig(replicas);
  c.health.http = "http://127.0.0.1:{probe_port}/healthz";
  c.health.interval = 1s;
  c.health.failures = 2;
  return c;
}

// Answers every pending probe attempt with `s`.
void AnswerProbes(Harness& h, const Status& s) {
  while (!h.probes.attempts.empty()) h.probes.CompleteNext(s);
}

size_t CountEvents(const Harness& h, EventType type) {
  size_t n = 0;
  for (const auto& e : h.events) n += e.type == type;
  return n;
}

}  // namespace

TEST_CASE("[health] and [recycle] in the config, and their errors with file, line and key") {
  auto c = WithTables(
      "[service.web.health]\nhttp = \"http://127.0.0.1:{probe_port}/healthz\"\ninterval = \"5s\"\nfailures = 4\n"
      "watchdog = \"20s\"\n[service.web.recycle]\nmax_memory = \"300M\"\nmax_age = \"6h\"\n");
  REQUIRE(c.ok());
  const ServiceConfig& s = c->services[0];
  CHECK(*s.health.http == "http://127.0.0.1:{probe_port}/healthz");
  CHECK(s.health.interval == 5s);
  CHECK(s.health.failures == 4);
  CHECK(s.health.watchdog == 20s);
  CHECK(s.recycle.max_memory == 300ull << 20);
  CHECK(s.recycle.max_age == 6h);
  CHECK(s.recycle.interval == 10s);
  CHECK(NeedsProbePort(s, Release{"v1", std::nullopt, {}, 0}));

  CHECK(ErrorOf("[service.web.health]\ninterval = \"5s\"\n") ==
        "baton.toml:3:1: service.web.health: needs a probe (http, tcp or exec) or a watchdog, or leave the table out");
  CHECK(ErrorOf("[service.web.health]\ntcp = true\nfailures = 0\n") ==
        "baton.toml:5:12: service.web.health.failures: must be between 1 and 1000");
  CHECK(
      ErrorOf("[service.web.health]\nhttp = \"ftp://x\"\n").find("service.web.health.http: expected an http:// URL") !=
      std::string::npos);
  CHECK(ErrorOf("[service.web.health]\nexec = [\"check\", \"{nope}\"]\n").find("service.web.health.exec") !=
        std::string::npos);
  CHECK(ErrorOf("[service.web.recycle]\nmax_memory = \"12X\"\n").find("service.web.recycle.max_memory") !=
        std::string::npos);
  CHECK(ErrorOf("[service.web.recycle]\nmax_age = \"10ms\"\n") ==
        "baton.toml:4:11: service.web.recycle.max_age: must be at least 1s");
  CHECK(ErrorOf("[service.web.recycle]\ninterval = \"1s\"\n") ==
        "baton.toml:3:1: service.web.recycle: needs max_memory or max_age, or leave the table out");
  CHECK(ErrorOf("[service.web.recycle]\nmax_rss = 1\n").find("service.web.recycle.max_rss") != std::string::npos);
}

TEST_CASE("the health check: rounds every interval, failures in a row, the watchdog and its trigger") {
  FakeClock clock;
  FakeProbeRunner runner;
  ::baton::HealthConfig config;
  config.tcp = "127.0.0.1:9";
  config.interval = 1s;
  config.failures = 3;
  config.watchdog = 5s;
  std::vector<std::string> failed;
  int rounds_failed = 0;
  LivenessCheck check(
      clock, runner, config, {Probe{Probe::Kind::kTcp, "127.0.0.1:9", {}, {}}},
      [&](const std::string& why) { failed.push_back(why); }, [&](const Status& s) { rounds_failed += !s.ok(); });
  check.Start();
  CHECK(runner.attempts.empty());  // the first round comes an interval after the start
  auto round = [&](Status s) {
    check.OnWatchdog();  // the worker's own WATCHDOG=1 keeps coming
    clock.Advance(1s);
    REQUIRE(runner.attempts.size() == 1);
    runner.CompleteNext(std::move(s));
  };
  round(Status::Failed("connection refused"));
  round(Status::Failed("connection refused"));
  round(Status::Ok());  // a success in between starts the count again
  CHECK(check.consecutive_failures() == 0);
  round(Status::Failed("refused"));
  round(Status::Failed("refused"));
  CHECK(failed.empty());
  round(Status::Failed("timed out"));
  REQUIRE(failed.size() == 1);
  CHECK(failed[0] == "health check failed 3 time(s) in a row: timed out");
  CHECK(check.Describe()["consecutive_failures"] == 3);
  CHECK(check.Describe()["last_result"] == "timed out");
  CHECK(rounds_failed == 5);
  // Still failing: reported again after 3 more, not at every round.
  round(Status::Failed("timed out"));
  round(Status::Failed("timed out"));
  CHECK(failed.size() == 1);
  round(Status::Failed("timed out"));
  CHECK(failed.size() == 2);
  check.OnWatchdogTrigger();
  REQUIRE(failed.size() == 3);
  CHECK(failed[2] == "the worker sent WATCHDOG=trigger");
  // The worker goes silent: reported once the watchdog's 5s pass without WATCHDOG=1.
  check.OnWatchdog();
  clock.Advance(4s);
  runner.attempts.clear();
  CHECK(failed.size() == 3);
  clock.Advance(1s);
  REQUIRE(failed.size() == 4);
  CHECK(failed[3] == "no WATCHDOG=1 within 5s");
}

TEST_CASE("the watchdog alone: WATCHDOG=1 within the period keeps a worker well, silence is reported") {
  FakeClock clock;
  FakeProbeRunner runner;
  ::baton::HealthConfig config;
  config.watchdog = 2s;
  std::vector<std::string> failed;
  LivenessCheck check(clock, runner, config, {}, [&](const std::string& why) { failed.push_back(why); });
  check.Start();
  for (int i = 0; i < 5; ++i) {
    clock.Advance(1500ms);
    check.OnWatchdog();
  }
  CHECK(failed.empty());
  CHECK(runner.attempts.empty());
  clock.Advance(2s);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0] == "no WATCHDOG=1 within 2s");
}

TEST_CASE("recycle policy: the heaviest worker above max_memory, else the oldest beyond max_age") {
  RecycleConfig config;
  config.max_memory = 100ull << 20;
  config.max_age = 1h;
  CHECK_FALSE(ChooseRecycle(config, {{0, 10min, 50ull << 20}, {1, 20min, std::nullopt}}));
  auto heavy = ChooseRecycle(config, {{0, 2h, 150ull << 20}, {1, 10min, 180ull << 20}, {2, 3h, 20ull << 20}});
  REQUIRE(heavy);
  CHECK(heavy->worker_id == 1);
  CHECK(heavy->cause == ReplaceCause::kMemory);
  CHECK(heavy->why == "RSS 180 MiB is above max_memory 100 MiB");
  auto old = ChooseRecycle(config, {{0, 2h, 10ull << 20}, {1, 3h, std::nullopt}, {2, 10min, 1ull << 20}});
  REQUIRE(old);
  CHECK(old->worker_id == 1);
  CHECK(old->cause == ReplaceCause::kAge);
  config.max_memory = 0;
  config.max_age = 0ms;
  CHECK_FALSE(ChooseRecycle(config, {{0, 100h, 1ull << 40}}));
}

TEST_CASE("a worker's process group from /proc/PID/stat, whatever its command name holds") {
  CHECK(ProcessGroupOf("123 (python3) S 1 123 123 0 -1") == 123);
  CHECK(ProcessGroupOf("77 (a) b (c)) R 5 70 70 0") == 70);
  CHECK_FALSE(ProcessGroupOf("garbage"));
  CHECK_FALSE(ProcessGroupOf("1 (x) S 1"));
  CHECK_FALSE(ProcessGroupOf("1 (x) S 1 -5 1"));
  auto own = ProcessGroupRss(::getpgrp());
  REQUIRE(own.ok());
  CHECK(*own > 0);
  CHECK(ProcessGroupRss(999999999).status().code() == ErrorCode::kNotFound);
}

TEST_CASE("a failed health check replaces the worker: the fresh one is ready before the old one is signalled") {
  Harness h(WithHealth(2));
  h.StartLive("v1");
  auto pids = h.PidsOf("v1");
  REQUIRE(pids.size() == 2);
  // Round 1: both pass. Rounds 2 and 3: the first worker fails.
  h.clock.Advance(1s);
  REQUIRE(h.probes.attempts.size() == 2);
  AnswerProbes(h, Status::Ok());
  for (int round = 0; round < 2; ++round) {
    h.clock.Advance(1s);
    REQUIRE(h.probes.attempts.size() == 2);
    h.probes.CompleteNext(Status::Failed("connection refused"));
    h.probes.CompleteNext(Status::Ok());
  }
  CHECK(h.HasEvent(EventType::kUnhealthy));
  CHECK(h.HasEvent(EventType::kReplacing));
  auto now = h.PidsOf("v1");
  REQUIRE(now.size() == 3);  // the fresh worker beside the two
  int fresh = now[2];
  CHECK_FALSE(h.launcher.SignalledAny(pids[0]));  // nothing stops before the fresh one is ready
  auto status = h.service->Describe();
  CHECK(status["counters"]["health_failures"] == 2);
  h.Ready(fresh);
  CHECK(h.launcher.Signalled(pids[0], SIGTERM));
  CHECK_FALSE(h.launcher.SignalledAny(pids[1]));
  CHECK(h.HasEvent(EventType::kReplaced));
  REQUIRE(h.replaced.size() == 1);
  CHECK(h.replaced[0] == ReplaceCause::kHealth);
  // A hung worker ignores its stop signal: SIGKILL after stop.timeout.
  h.clock.Advance(3s);
  CHECK(h.launcher.Signalled(pids[0], SIGKILL));
  h.launcher.Exit(pids[0], ExitInfo{0, SIGKILL});
  h.clock.RunDue();
  // The exited worker is gone from status; two ready workers remain, and no restart.
  auto workers = h.service->Describe()["generations"][0]["workers"];
  CHECK(workers.size() == 2);
  for (const auto& w : workers) CHECK(w["state"] == "ready");
  CHECK(h.PidsOf("v1").size() == 2);
  CHECK(h.service->Describe()["counters"]["replacements"]["health"] == 1);
  CHECK(h.service->counters().restarts == 0);
}

TEST_CASE("a replacement that does not get ready leaves the old worker serving, and it is reported again") {
  Harness h(WithHealth(1));
  h.StartLive("v1");
  int old = h.PidsOf("v1")[0];
  auto fail_round = [&] {
    h.clock.Advance(1s);
    AnswerProbes(h, Status::Failed("timed out"));
  };
  fail_round();
  fail_round();
  REQUIRE(h.PidsOf("v1").size() == 2);
  int fresh = h.PidsOf("v1")[1];
  h.launcher.Exit(fresh, ExitInfo{1, 0});
  CHECK(h.HasEvent(EventType::kReplaceFailed));
  CHECK_FALSE(h.launcher.SignalledAny(old));
  CHECK(h.service->counters().replace_failures == 1);
  CHECK(h.service->counters().restarts == 0);  // a failed replacement is not restarted
  // Two more failed rounds: another try.
  fail_round();
  fail_round();
  CHECK(CountEvents(h, EventType::kReplacing) == 2);
  // The replacement that times out on readiness is stopped, and the old one stays.
  h.clock.Advance(5s);
  CHECK(CountEvents(h, EventType::kReplaceFailed) == 2);
  CHECK_FALSE(h.launcher.SignalledAny(old));
}

TEST_CASE("a failed health check within bake_time rolls back to the previous release") {
  ServiceConfig c = WithHealth(1);
  c.bake_time = 30s;
  Harness h(c);
  h.StartLive("v1");
  h.launcher.Exit(h.PidsOf("v1")[0]);  // (v1 drains once v2 is live)
  h.clock.RunDue();
  h.service->SetPreviousRelease(Release{"v1", std::nullopt, {}, 0});
  h.Begin("v2");
  h.ReadyAll("v2");
  REQUIRE(h.outcome->promoted);
  for (int round = 0; round < 2; ++round) {
    h.clock.Advance(1s);
    AnswerProbes(h, Status::Failed("500"));
  }
  CHECK(h.HasEvent(EventType::kRollingBack));
  CHECK_FALSE(h.HasEvent(EventType::kReplacing));
  CHECK(h.service->pending()->release.version == "v1");
}

TEST_CASE("the sd_notify watchdog: WATCHDOG_USEC and WATCHDOG_PID for workers, silence replaces the worker") {
  ServiceConfig c = NotifyConfig(1);
  c.health.watchdog = 2s;
  Harness h(c);
  h.StartLive("v1");
  const auto& spec = h.launcher.launched[0].spec;
  bool usec = false;
  for (const auto& [k, v] : spec.env) usec = usec || (k == "WATCHDOG_USEC" && v == "2000000");
  CHECK(usec);
  CHECK(spec.own_pid_env == std::vector<std::string>{"LISTEN_PID", "WATCHDOG_PID"});
  int pid = h.PidsOf("v1")[0];
  for (int i = 0; i < 4; ++i) {
    h.clock.Advance(1500ms);
    h.service->OnNotify(pid, ParseNotifyMessage("WATCHDOG=1"));
  }
  CHECK_FALSE(h.HasEvent(EventType::kUnhealthy));
  h.clock.Advance(2s);
  CHECK(h.HasEvent(EventType::kUnhealthy));
  CHECK(h.PidsOf("v1").size() == 2);
}

TEST_CASE("recycle: one worker at a time, each after its replacement is ready, refused during a handover") {
  Harness h(NotifyConfig(3));
  h.StartLive("v1");
  auto first = h.PidsOf("v1");
  auto count = h.service->Recycle();
  REQUIRE(count.ok());
  CHECK(*count == 3);
  CHECK(h.service->Recycle().status().code() == ErrorCode::kConflict);  // already recycling
  for (int i = 0; i < 3; ++i) {
    auto now = h.PidsOf("v1");
    REQUIRE(now.size() == 4);  // never more than one fresh worker at a time
    int fresh = now.back();
    CHECK_FALSE(h.launcher.SignalledAny(first[i]));
    h.Ready(fresh);
    CHECK(h.launcher.Signalled(first[i], SIGTERM));
    h.launcher.Exit(first[i]);
    h.clock.RunDue();
  }
  auto after = h.PidsOf("v1");
  CHECK(after.size() == 3);
  for (int pid : first) CHECK(std::find(after.begin(), after.end(), pid) == after.end());
  CHECK(h.replaced == std::vector<ReplaceCause>(3, ReplaceCause::kOperator));
  h.Begin("v2");
  CHECK(h.service->Recycle().status().code() == ErrorCode::kConflict);
}

TEST_CASE("recycle by max_age and max_memory, looked at every interval, never during a handover") {
  ServiceConfig c = NotifyConfig(2);
  c.recycle.max_age = 1h;
  c.recycle.max_memory = 100ull << 20;
  c.recycle.interval = 10s;
  c.ready.timeout = 2h;
  Harness h(c);
  h.StartLive("v1");
  auto pids = h.PidsOf("v1");
  h.rss[pids[1]] = 50ull << 20;
  h.clock.Advance(10s);
  CHECK(h.PidsOf("v1").size() == 2);  // within bounds
  h.rss[pids[1]] = 150ull << 20;
  h.clock.Advance(10s);
  REQUIRE(h.PidsOf("v1").size() == 3);
  h.Ready(h.PidsOf("v1")[2]);
  CHECK(h.launcher.Signalled(pids[1], SIGTERM));
  CHECK(h.replaced == std::vector<ReplaceCause>{ReplaceCause::kMemory});
  h.launcher.Exit(pids[1]);
  // An hour on, the oldest worker goes; but not while a handover runs.
  h.Begin("v2");
  h.clock.Advance(1h);
  CHECK(h.PidsOf("v1").size() == 2);
  CHECK(h.replaced.size() == 1);
  h.ReadyAll("v2");
  REQUIRE(h.outcome->promoted);
  CHECK(h.PidsOf("v2").size() == 2);
}

TEST_CASE("recycle: workers that cannot be started again are reported, and no two replacements run at once") {
  Harness h(NotifyConfig(3));
  h.StartLive("v1");
  auto first = h.PidsOf("v1");
  h.launcher.fail_launches = true;  // fork fails: every replacement fails at once
  REQUIRE(h.service->Recycle().ok());
  CHECK(CountEvents(h, EventType::kReplaceFailed) == 3);
  CHECK(h.PidsOf("v1") == first);  // every worker serves on
  for (int pid : first) CHECK_FALSE(h.launcher.SignalledAny(pid));
  h.launcher.fail_launches = false;
  // The first replacement cannot start; the next one does, and it alone runs.
  h.launcher.fail_next_launches = 1;
  REQUIRE(h.service->Recycle().ok());
  CHECK(CountEvents(h, EventType::kReplaceFailed) == 4);
  CHECK(h.PidsOf("v1").size() == 4);  // one fresh worker at a time
}
