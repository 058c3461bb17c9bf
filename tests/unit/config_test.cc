// The config file: every documented key, listener order, and errors that name the file,
// line and key. The keys of each feature are in config_features_test.cc.
#include <catch2/catch.hpp>

#include "supervisor/config/config.h"
#include "tests/unit/config_parse.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("a full config parses with every documented key") {
  auto c = Parse(R"(
[daemon]
control_socket = "/tmp/b/ctl.sock"
state_dir = "/tmp/b/state"
log_level = "debug"

[service.web]
command = ["/usr/bin/server", "--listen-fd", "{fd:http}", "--version={version}"]
version = "v1"
replicas = 3
env = { MODE = "prod", PORT = "{port:http}" }
cwd = "/srv"
bake_time = "1m"

[service.web.listen]
http = "tcp://127.0.0.1:8080"
admin = { address = "unix:///tmp/b/admin.sock", backlog = 128 }
v6 = "tcp6://[::1]:8081"
dns = "udp://127.0.0.1:5353"

[service.web.ready]
notify = true
http = "http://127.0.0.1:{probe_port}/healthz"
exec = ["/bin/true"]
timeout = "5s"

[service.web.stop]
signal = "QUIT"
signal_to = "main"
timeout = "20s"

[service.web.restart]
backoff = "250ms"
max_backoff = "8s"
multiplier = 3
max_failures = 7
reset_after = "30s"

[service.web.rollout]
batch = 1

[service.worker]
command = ["sleep", "infinity"]
)");
  REQUIRE(c.ok());
  CHECK(c->daemon.control_socket == "/tmp/b/ctl.sock");
  REQUIRE(c->services.size() == 2);
  const ServiceConfig& w = c->services[1].name == "web" ? c->services[1] : c->services[0];
  CHECK(w.replicas == 3);
  CHECK(w.env.at("PORT") == "{port:http}");
  REQUIRE(w.listeners.size() == 4);
  CHECK(w.listeners[0].name == "http");  // declaration order = fd order
  CHECK(w.listeners[1].address.kind == SocketAddress::Kind::kUnix);
  CHECK(w.listeners[1].backlog == 128);
  CHECK(w.listeners[2].address.host == "::1");
  CHECK(w.listeners[3].address.kind == SocketAddress::Kind::kUdp);
  CHECK(w.ready.notify);
  CHECK(*w.ready.http == "http://127.0.0.1:{probe_port}/healthz");
  CHECK(w.ready.timeout == 5s);
  CHECK(w.stop.signal == SIGQUIT);
  CHECK_FALSE(w.stop.signal_group);
  CHECK(w.stop.timeout == 20s);
  CHECK(w.restart.initial_backoff == 250ms);
  CHECK(w.restart.multiplier == 3.0);
  CHECK(w.restart.max_failures == 7);
  CHECK(w.rollout.batch == 1);
  CHECK(w.bake_time == 60s);
  CHECK(c->warnings.empty());
}

TEST_CASE("listener order in the file is the fd order") {
  auto c = Parse(R"(
[service.a]
command = ["x"]
[service.a.listen]
zeta = "tcp://127.0.0.1:1"
alpha = "tcp://127.0.0.1:2"
)");
  REQUIRE(c.ok());
  CHECK(c->services[0].listeners[0].name == "zeta");
}

TEST_CASE("errors name the file, line and key") {
  SECTION("syntax") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"\n"),
               Catch::StartsWith("baton.toml:2:") && Catch::Contains("syntax"));
  }
  SECTION("unknown key") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"]\nreplica = 2\n"),
               Catch::StartsWith("baton.toml:3:1: service.a.replica: unknown key"));
  }
  SECTION("bad address") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"]\n[service.a.listen]\nhttp = \"tcp://localhostt:80\"\n"),
               Catch::StartsWith("baton.toml:4:") && Catch::Contains("service.a.listen.http") &&
                   Catch::Contains("numeric IPv4"));
  }
  SECTION("bad port") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"]\n[service.a.listen]\nhttp = \"tcp://127.0.0.1:99999\"\n"),
               Catch::Contains("bad port"));
  }
  SECTION("missing command") {
    CHECK_THAT(ErrorOf("[service.a]\nversion = \"1\"\n"),
               Catch::StartsWith("baton.toml:1:") && Catch::Contains("service.a.command: missing"));
  }
  SECTION("empty command") { CHECK_THAT(ErrorOf("[service.a]\ncommand = []\n"), Catch::Contains("service.a.command")); }
  SECTION("duplicate listener address") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"]\n[service.a.listen]\nhttp = \"tcp://127.0.0.1:80\"\n"
                       "[service.b]\ncommand = [\"x\"]\n[service.b.listen]\nweb = \"tcp://127.0.0.1:80\"\n"),
               Catch::StartsWith("baton.toml:8:") && Catch::Contains("service.b.listen.web") &&
                   Catch::Contains("already used by service.a.listen.http"));
  }
  SECTION("duplicate listener name is a TOML error") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"]\n[service.a.listen]\nhttp = \"tcp://127.0.0.1:80\"\n"
                       "http = \"tcp://127.0.0.1:81\"\n"),
               Catch::StartsWith("baton.toml:5:"));
  }
  SECTION("placeholder naming no listener") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\", \"{fd:htp}\"]\n"),
               Catch::StartsWith("baton.toml:2:") && Catch::Contains("{fd:htp} names no listener"));
  }
  SECTION("wrong type") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"]\nreplicas = \"two\"\n"),
               Catch::StartsWith("baton.toml:3:") && Catch::Contains("service.a.replicas: expected an integer"));
  }
  SECTION("bad duration") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"]\n[service.a.ready]\ntimeout = \"5 parsecs\"\n"),
               Catch::StartsWith("baton.toml:4:") && Catch::Contains("service.a.ready.timeout"));
  }
  SECTION("unknown signal") {
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"]\n[service.a.stop]\nsignal = \"SIGFOO\"\n"),
               Catch::Contains("service.a.stop.signal: unknown signal"));
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\"]\n[service.a.stop]\nsignal_to = \"children\"\n"),
               Catch::Contains("baton.toml:4:13: service.a.stop.signal_to: expected \"group\" or \"main\""));
  }
  SECTION("no services") { CHECK_THAT(ErrorOf("[daemon]\n"), Catch::Contains("no services defined")); }
}

TEST_CASE("a probe aimed at the shared listener is accepted with a warning") {
  auto c = Parse(R"(
[service.a]
command = ["x"]
[service.a.listen]
http = "tcp://127.0.0.1:8080"
[service.a.ready]
http = "http://127.0.0.1:8080/health"
)");
  REQUIRE(c.ok());
  REQUIRE(c->warnings.size() == 1);
  CHECK_THAT(c->warnings[0], Catch::Contains("shared listener"));
}

TEST_CASE("a missing file is reported with its path") {
  auto c = LoadConfig("/nonexistent/baton.toml");
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(c.status().message(), Catch::StartsWith("/nonexistent/baton.toml: unable to read"));
}

TEST_CASE("signal names") {
  CHECK(ParseSignal("TERM") == SIGTERM);
  CHECK(ParseSignal("SIGUSR2") == SIGUSR2);
  CHECK(ParseSignal("9") == SIGKILL);
  CHECK(ParseSignal("NOPE") == -1);
  CHECK(SignalName(SIGKILL) == "SIGKILL");
}
