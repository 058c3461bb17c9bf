// A service outside handovers (service_operations.cc): sd_notify messages, stop, scale,
// signal and the FD store, through the fakes.
#include <catch2/catch.hpp>

#include <set>

#include <unistd.h>

#include "tests/unit/service_harness.h"

using namespace baton;
using namespace baton::testing;
using namespace std::chrono_literals;

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

TEST_CASE("env_file: read at every handover, over env and under the release's env - a bad file fails that handover") {
  ServiceConfig c = NotifyConfig(1);
  c.env = {{"A", "config"}, {"B", "config"}};
  c.env_files = {"/etc/web.env"};
  Harness h(c);
  auto env_of = [&](size_t launch) {
    const auto& env = h.launcher.launched.at(launch).spec.env;
    return std::map<std::string, std::string>(env.begin(), env.end());
  };
  h.env_file = {{"B", "file"}, {"C", "file at v1"}};
  h.StartLive("v1");
  CHECK(h.env_files_read == std::vector<std::vector<std::string>>{{"/etc/web.env"}});
  auto v1 = env_of(0);
  CHECK(v1["A"] == "config");
  CHECK(v1["B"] == "file");
  CHECK(v1["C"] == "file at v1");

  // The file changed: the next release sees it; the release's own env comes last.
  h.env_file = {{"C", "file at v2"}, {"D", "file"}};
  REQUIRE(h.service
              ->Handover(Release{"v2", std::nullopt, {{"D", "release"}}, 0}, HandoverKind::kUpgrade,
                         [&](const HandoverResult& r) { h.outcome = r; })
              .ok());
  h.clock.RunDue();
  auto v2 = env_of(1);
  CHECK(v2["B"] == "config");
  CHECK(v2["C"] == "file at v2");
  CHECK(v2["D"] == "release");
  h.ReadyAll("v2");
  REQUIRE(h.outcome);
  CHECK(h.outcome->promoted);

  h.env_file_error = Status::InvalidArgument("env_file /etc/web.env:3: expected KEY=VALUE");
  Status s = h.service->Handover(Release{"v3", std::nullopt, {}, 0}, HandoverKind::kUpgrade, [](const auto&) {});
  CHECK(s.message() == "env_file /etc/web.env:3: expected KEY=VALUE");
  h.clock.RunDue();
  CHECK(h.launcher.launched.size() == 2);  // nothing started
  CHECK(h.service->live()->release.version == "v2");
  CHECK_FALSE(h.service->handover_in_progress());
}
