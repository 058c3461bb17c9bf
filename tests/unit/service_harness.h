// The Service under test with fakes for everything it touches (clock, launcher, probe
// runner, and optionally steering): starts handovers, marks workers ready, records events
// and outcomes. Shared by the Service's unit tests.
#pragma once

#include <catch2/catch.hpp>
#include <set>

#include "supervisor/base/log.h"
#include "supervisor/config/env_file.h"
#include "supervisor/handover/service.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_launcher.h"
#include "tests/fakes/fake_probe_runner.h"
#include "tests/fakes/fake_steering.h"

namespace baton::testing {

using namespace std::chrono_literals;

// The service logs every step; keep test output to the assertions.
inline const bool kQuiet = [] {
  spdlog::set_level(spdlog::level::off);
  return true;
}();

inline ServiceConfig NotifyConfig(int replicas = 1) {
  ServiceConfig c;
  c.name = "web";
  c.command = {"server", "--version", "{version}", "--fd", "{fd:http}"};
  c.version = "v1";
  c.replicas = replicas;
  c.ready.notify = true;
  c.ready.timeout = 5s;
  c.stop.timeout = 3s;
  c.bake_time = 0s;
  return c;
}

struct Harness {
  explicit Harness(ServiceConfig config, TrafficSteering* steering = nullptr) {
    ServiceIo io;
    io.steering = steering;
    io.listeners.push_back(ListenerRef{"http", 7, 8080, "tcp://127.0.0.1:8080"});
    io.notify_socket = "/run/notify.sock";
    io.pick_probe_port = [this] { return Result<int>(next_probe_port++); };
    io.port_free = [this](int port) { return taken_ports.count(port) == 0; };
    io.on_result = [this](const Release&, const HandoverResult& r) { results.push_back(r); };
    io.proxied_connections = [this](int64_t generation, bool unanswered_only) {
      return (unanswered_only ? proxied_unanswered : proxied_open)[generation];
    };
    io.traffic = [this](int64_t generation) { return traffic[generation]; };
    io.read_env_files = [this](const std::vector<std::string>& files) -> Result<EnvList> {
      env_files_read.push_back(files);
      if (!env_file_error.ok()) return env_file_error;
      return env_file;
    };
    io.group_rss = [this](int pgid) -> Result<uint64_t> {
      auto it = rss.find(pgid);
      if (it == rss.end()) return Status::NotFound("no process in group");
      return it->second;
    };
    io.on_replaced = [this](const Generation&, ReplaceCause cause) { replaced.push_back(cause); };
    service = std::make_unique<Service>(clock, launcher, probes, std::move(config), std::move(io),
                                        [this](const ServiceEvent& e) { events.push_back(e); });
  }

  // Starts a handover and lets its first spawn happen.
  HandoverResult* Begin(const std::string& version, HandoverKind kind = HandoverKind::kUpgrade) {
    outcome.reset();
    Status s = service->Handover(Release{version, std::nullopt, {}, 0}, kind,
                                 [this](const HandoverResult& r) { outcome = r; });
    REQUIRE(s.ok());
    clock.RunDue();
    return nullptr;
  }
  std::vector<int> PidsOf(const std::string& version) const {
    std::vector<int> pids;
    for (const auto& l : launcher.launched)
      for (size_t i = 0; i + 1 < l.spec.argv.size(); ++i)
        if (l.spec.argv[i] == "--version" && l.spec.argv[i + 1] == version && launcher.IsRunning(l.pid))
          pids.push_back(l.pid);
    return pids;
  }
  void Ready(int pid) { service->OnNotify(pid, ParseNotifyMessage("READY=1")); }
  void ReadyAll(const std::string& version) {
    for (int pid : PidsOf(version)) Ready(pid);
  }
  // Starts `version` as the first live generation.
  void StartLive(const std::string& version) {
    Begin(version, HandoverKind::kStart);
    ReadyAll(version);
    REQUIRE(outcome);
    REQUIRE(outcome->promoted);
  }
  bool HasEvent(EventType type) const {
    for (const auto& e : events)
      if (e.type == type) return true;
    return false;
  }

  FakeClock clock;
  FakeLauncher launcher;
  FakeProbeRunner probes;
  int next_probe_port = 40000;
  std::set<int> taken_ports;                     // ports another process holds
  std::map<int64_t, size_t> proxied_open;        // generation -> connections the proxy holds open
  std::map<int64_t, size_t> proxied_unanswered;  // ... of which the worker has not answered yet
  std::map<int64_t, GenerationTraffic> traffic;  // what the proxy routed to each generation
  EnvList env_file;                              // what the service's env_file holds
  Status env_file_error = Status::Ok();
  std::vector<std::vector<std::string>> env_files_read;
  std::map<int, uint64_t> rss;         // a worker's process group -> its resident bytes
  std::vector<ReplaceCause> replaced;  // what on_replaced heard
  std::unique_ptr<Service> service;
  std::vector<ServiceEvent> events;
  std::vector<HandoverResult> results;
  std::optional<HandoverResult> outcome;
};

// Proxy mode: the worker binds a private port batond picked, and batond routes to it.
inline ServiceConfig ProxyServiceConfig() {
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
inline void ReadyProxied(Harness& h, const std::string& version, HandoverKind kind = HandoverKind::kUpgrade) {
  h.Begin(version, kind);
  while (!h.probes.attempts.empty()) h.probes.CompleteNext(Status::Ok());
  h.ReadyAll(version);
}

inline void ProxiedHandover(Harness& h, const std::string& version, HandoverKind kind = HandoverKind::kUpgrade) {
  ReadyProxied(h, version, kind);
  REQUIRE(h.outcome);
  REQUIRE(h.outcome->promoted);
}

}  // namespace baton::testing
