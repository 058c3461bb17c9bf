// The config keys of each feature: proxy mode, steering, tunnels, least privilege,
// progressive rollout and port ranges, parsed and refused with their reasons.
#include <catch2/catch.hpp>

#include "supervisor/config/config.h"
#include "tests/unit/config_parse.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("proxy mode listeners") {
  auto c = Parse(R"(
[service.web]
command = ["python3", "-m", "http.server", "{port:http}", "--bind", "127.0.0.1"]
[service.web.listen]
http = { address = "tcp://127.0.0.1:8080", mode = "proxy", proxy_protocol = true, max_connections = 50, idle_timeout = "30s", connect_timeout = "500ms", connect_retries = 5 }
admin = "unix:///tmp/admin.sock"
[service.web.stop]
drain_timeout = "45s"
)");
  REQUIRE(c.ok());
  const auto& l = c->services[0].listeners;
  REQUIRE(l.size() == 2);
  CHECK(l[0].mode == ListenMode::kProxy);
  CHECK(l[0].proxy.proxy_protocol);
  CHECK(l[0].proxy.max_connections == 50);
  CHECK(l[0].proxy.idle_timeout == 30s);
  CHECK(l[0].proxy.connect_timeout == 500ms);
  CHECK(l[0].proxy.connect_retries == 5);
  CHECK(l[1].mode == ListenMode::kShared);  // a unix socket cannot be steered
  CHECK(c->services[0].has_proxy());
  CHECK(c->services[0].stop.drain_timeout == 45s);

  const std::string head = "[service.a]\ncommand = [\"x\", \"{port:p}\"]\n[service.a.listen]\n";
  SECTION("a proxied listener has a port but no fd") {
    CHECK(Parse(head + "p = { address = \"unix:///tmp/p.sock\", mode = \"proxy\" }\n").ok());
    CHECK_THAT(ErrorOf("[service.a]\ncommand = [\"x\", \"{fd:p}\"]\n[service.a.listen]\n"
                       "p = { address = \"tcp://127.0.0.1:80\", mode = \"proxy\" }\n"),
               Catch::StartsWith("baton.toml:2:") && Catch::Contains("{fd:p}"));
  }
  SECTION("errors") {
    CHECK_THAT(ErrorOf(head + "p = { address = \"tcp://127.0.0.1:80\", mode = \"proxi\" }\n"),
               Catch::StartsWith("baton.toml:4:") && Catch::Contains("service.a.listen.p.mode"));
    CHECK_THAT(ErrorOf(head + "p = { address = \"udp://127.0.0.1:80\", mode = \"proxy\" }\n"),
               Catch::Contains("proxy mode forwards streams"));
    CHECK_THAT(ErrorOf(head + "p = { address = \"tcp://127.0.0.1:80\", idle_timeout = \"5s\" }\n"),
               Catch::Contains("service.a.listen.p.idle_timeout: applies only with mode = \"proxy\""));
    CHECK_THAT(ErrorOf(head + "p = { address = \"tcp://127.0.0.1:80\", mode = \"proxy\", max_connections = 0 }\n"),
               Catch::Contains("service.a.listen.p.max_connections: must be between"));
  }
}

TEST_CASE("steering: kernel by default for tcp, tcp6 and udp, shared for unix and systemd or when asked") {
  auto c = Parse(R"(
[service.web]
command = ["x"]
[service.web.listen]
a = "tcp://127.0.0.1:80"
b = "tcp6://[::1]:80"
c = "udp://127.0.0.1:53"
d = "unix:///run/d.sock"
e = "systemd:web"
f = { address = "tcp://127.0.0.1:81", steering = "shared" }
g = { address = "tcp://127.0.0.1:82", steering = "kernel" }
)");
  REQUIRE(c.ok());
  std::vector<ListenMode> modes;
  for (const auto& l : c->services[0].listeners) modes.push_back(l.mode);
  using M = ListenMode;
  CHECK(modes == std::vector<M>{M::kKernel, M::kKernel, M::kKernel, M::kShared, M::kShared, M::kShared, M::kKernel});
  CHECK(std::string(ListenModeName(M::kKernel)) == "kernel");
  const std::string head = "[service.a]\ncommand = [\"x\"]\n[service.a.listen]\n";
  CHECK_THAT(ErrorOf(head + "p = { address = \"unix:///run/p.sock\", steering = \"kernel\" }\n"),
             Catch::Contains("baton.toml:4:") &&
                 Catch::Contains("service.a.listen.p.steering: kernel steering needs a tcp, tcp6 or udp address"));
  CHECK_THAT(ErrorOf(head + "p = { address = \"tcp://127.0.0.1:1\", steering = \"bpf\" }\n"),
             Catch::Contains("service.a.listen.p.steering: expected \"kernel\" or \"shared\""));
  CHECK_THAT(ErrorOf(head + "p = { address = \"tcp://127.0.0.1:1\", mode = \"proxy\", steering = \"shared\" }\n"),
             Catch::Contains("service.a.listen.p.steering: applies only to inherited listeners"));
}

TEST_CASE("tunnels") {
  const std::string service =
      "[service.web]\ncommand = [\"x\"]\n[service.web.listen]\nhttp = \"tcp://127.0.0.1:8080\"\n"
      "dns = \"udp://127.0.0.1:5353\"\n";
  auto c = Parse(service + R"(
[tunnel.edge]
edges = ["203.0.113.7:22", "[2001:db8::1]:2222"]
user = "baton"
identity = "/etc/baton/id_ed25519"
known_hosts = "/etc/baton/known_hosts"
remote_bind = "127.0.0.1:8080"
to = "web.http"
keepalive = "5s"
)");
  REQUIRE(c.ok());
  REQUIRE(c->tunnels.size() == 1);
  const TunnelConfig& t = c->tunnels[0];
  CHECK(t.edges == std::vector<std::pair<std::string, int>>{{"203.0.113.7", 22}, {"2001:db8::1", 2222}});
  CHECK(t.user == "baton");
  CHECK(t.remote_host == "127.0.0.1");
  CHECK(t.remote_port == 8080);
  CHECK(t.to_service == "web");
  CHECK(t.to_listener == "http");
  CHECK(t.keepalive == 5s);

  const std::string head = service + "[tunnel.t]\nedges = [\"127.0.0.1:22\"]\nidentity = \"k\"\nknown_hosts = \"h\"\n";
  CHECK_THAT(ErrorOf(head + "remote_bind = \"127.0.0.1:80\"\nto = \"web.nope\"\n"),
             Catch::Contains("tunnel.t.to: no listener 'nope' in a service 'web'"));
  CHECK_THAT(ErrorOf(head + "remote_bind = \"127.0.0.1:80\"\nto = \"web.dns\"\n"), Catch::Contains("carries streams"));
  CHECK_THAT(ErrorOf(head + "remote_bind = \"127.0.0.1\"\nto = \"web.http\"\n"),
             Catch::StartsWith("baton.toml:10:") && Catch::Contains("tunnel.t.remote_bind"));
  CHECK_THAT(ErrorOf(head + "to = \"web.http\"\n"), Catch::Contains("tunnel.t.remote_bind: missing"));
  CHECK_THAT(ErrorOf(head + "remote_bind = \"127.0.0.1:80\"\nto = \"web.http\"\nkeepalive = \"1ms\"\n"),
             Catch::Contains("tunnel.t.keepalive: must be at least 100ms"));
}

TEST_CASE("least privilege keys: user, groups, umask, limits, pass_env") {
  auto c = Parse(R"(
[service.web]
command = ["/srv/web"]
user = "www-data"
group = "www-data"
supplementary_groups = ["ssl-cert", "1001"]
umask = "0027"
pass_env = ["LANG", "TZ"]
[service.web.limits]
nofile = 65536
nproc = "infinity"
core = 0
[service.api]
command = ["/srv/api"]
umask = 0o077
)");
  REQUIRE(c.ok());
  REQUIRE(c->services.size() == 2);
  const ServiceConfig& web = c->services[0].name == "web" ? c->services[0] : c->services[1];
  const ServiceConfig& api = c->services[0].name == "api" ? c->services[0] : c->services[1];
  CHECK(web.user == "www-data");
  CHECK(web.group == "www-data");
  CHECK(web.supplementary_groups == std::vector<std::string>{"ssl-cert", "1001"});
  CHECK(web.umask == 027u);
  CHECK(web.pass_env == std::vector<std::string>{"LANG", "TZ"});
  CHECK(web.limits.nofile == 65536u);
  CHECK(web.limits.nproc == LimitsConfig::kUnlimited);
  CHECK(web.limits.core == 0u);
  CHECK(api.umask == 077u);
  CHECK_FALSE(api.limits.nofile);
  CHECK_THAT(ErrorOf("[service.w]\ncommand = [\"x\"]\numask = \"0999\"\n"),
             Catch::Contains("baton.toml:3:9: service.w.umask: expected an octal mode"));
  CHECK_THAT(ErrorOf("[service.w]\ncommand = [\"x\"]\numask = 0o1000\n"), Catch::Contains("service.w.umask"));
  CHECK_THAT(
      ErrorOf("[service.w]\ncommand = [\"x\"]\n[service.w.limits]\nnofile = -1\n"),
      Catch::Contains("baton.toml:4:10: service.w.limits.nofile: expected a non-negative integer or \"infinity\""));
  CHECK_THAT(ErrorOf("[service.w]\ncommand = [\"x\"]\n[service.w.limits]\nstack = 1\n"),
             Catch::Contains("service.w.limits.stack: unknown key"));
  CHECK_THAT(ErrorOf("[service.w]\ncommand = [\"x\"]\nsupplementary_groups = \"wheel\"\n"),
             Catch::Contains("service.w.supplementary_groups: expected an array of strings"));
}

TEST_CASE("progressive rollout: keys, and refused for shared listeners with the reason") {
  auto c = Parse(R"(
[service.web]
command = ["/srv/web", "{port:http}"]
[service.web.listen]
http = { address = "tcp://127.0.0.1:8080", mode = "proxy" }
[service.web.rollout]
strategy = "progressive"
steps = [5, 25, 100]
step_time = "1m"
max_connect_failures = 3
max_resets = 10
max_error_ratio = 0.02
check = ["/usr/local/bin/smoke", "--quick"]
)");
  REQUIRE(c.ok());
  const RolloutConfig& r = c->services[0].rollout;
  CHECK(r.progressive);
  CHECK(r.steps == std::vector<int>{5, 25, 100});
  CHECK(r.step_time == 60s);
  CHECK(r.max_connect_failures == 3);
  CHECK(r.max_resets == 10);
  CHECK(r.max_error_ratio == Approx(0.02));
  CHECK(r.check.size() == 2);
  // Steered by the kernel: progressive, with the operator's check, but no thresholds that
  // need each connection's outcome.
  const std::string steered =
      "[service.w]\ncommand = [\"x\"]\n[service.w.listen]\nhttp = \"tcp://127.0.0.1:1\"\n"
      "[service.w.rollout]\nstrategy = \"progressive\"\n";
  REQUIRE(Parse(steered).ok());
  CHECK(Parse(steered).value().services[0].listeners[0].mode == ListenMode::kKernel);
  CHECK(Parse(steered + "check = [\"/bin/true\"]\n").ok());
  CHECK_THAT(ErrorOf(steered + "max_resets = 3\n"),
             Catch::Contains("baton.toml:7:14: service.w.rollout.max_resets: needs each connection's outcome, which "
                             "only proxy mode sees; listen.http is steered by the kernel"));
  CHECK_THAT(ErrorOf(steered + "max_error_ratio = 0.1\n"), Catch::Contains("service.w.rollout.max_error_ratio"));
  CHECK_THAT(ErrorOf("[service.w]\ncommand = [\"x\"]\n[service.w.listen]\n"
                     "http = { address = \"tcp://127.0.0.1:1\", steering = \"shared\" }\n"
                     "[service.w.rollout]\nstrategy = \"progressive\"\n"),
             Catch::Contains("service.w.rollout.strategy: progressive needs every listener steered") &&
                 Catch::Contains("listen.http is shared"));
  CHECK_THAT(ErrorOf("[service.w]\ncommand = [\"x\"]\n[service.w.rollout]\nsteps = [10, 5, 100]\n"),
             Catch::Contains("baton.toml:4:9: service.w.rollout.steps: expected increasing percentages"));
  CHECK_THAT(ErrorOf("[service.w]\ncommand = [\"x\"]\n[service.w.rollout]\nsteps = [10, 50]\n"),
             Catch::Contains("ending at 100"));
  CHECK_THAT(ErrorOf("[service.w]\ncommand = [\"x\"]\n[service.w.rollout]\nstrategy = \"canary\"\n"),
             Catch::Contains("service.w.rollout.strategy: expected \"all\" or \"progressive\""));
}

TEST_CASE("port_range: parsed, range-checked, and refused where the kernel's ephemeral ports are") {
  auto c = Parse("[daemon]\nport_range = \"12000-12999\"\n[service.w]\ncommand = [\"x\"]\n");
  REQUIRE(c.ok());
  CHECK(c->daemon.port_range == PortRange{12000, 12999});
  CHECK(c->daemon.port_range_at == "baton.toml:2:14");
  CHECK(Parse("[service.w]\ncommand = [\"x\"]\n")->daemon.port_range == PortRange{20000, 29999});
  auto bad = [](const std::string& value) { return ErrorOf("[daemon]\nport_range = " + value + "\n"); };
  CHECK_THAT(bad("\"12000\""), Catch::Contains("baton.toml:2:14: daemon.port_range: expected FIRST-LAST"));
  CHECK_THAT(bad("\"900-2000\""), Catch::Contains("first port: '900' is out of range (1024 to 65535)"));
  CHECK_THAT(bad("\"12000-70000\""), Catch::Contains("last port: '70000' is out of range"));
  CHECK_THAT(bad("\"12000-12010\""), Catch::Contains("at least 16 ports"));
  CHECK_THAT(bad("\"12000-1x\""), Catch::Contains("last port: expected a whole number, got '1x'"));
  CHECK_THAT(bad("12000"), Catch::Contains("daemon.port_range: expected a string"));

  // Against the kernel's ephemeral range: an error naming the line when configured, a
  // warning for the default.
  PortRange ephemeral{32768, 60999};
  auto overlapping = Parse("[daemon]\nport_range = \"30000-40000\"\n[service.w]\ncommand = [\"x\"]\n");
  REQUIRE(overlapping.ok());
  Status s = CheckPortRange(*overlapping, ephemeral);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::StartsWith("baton.toml:2:14: daemon.port_range: 30000-40000 overlaps the kernel's "
                                            "ephemeral ports 32768-60999"));
  CHECK(CheckPortRange(*c, ephemeral).ok());
  CHECK(CheckPortRange(*overlapping, std::nullopt).ok());  // unknown: nothing to check against
  auto widened = Parse("[service.w]\ncommand = [\"x\"]\n");
  CHECK(CheckPortRange(*widened, PortRange{1024, 65535}).ok());
  REQUIRE(widened->warnings.size() == 1);
  CHECK_THAT(widened->warnings[0], Catch::Contains("daemon.port_range: the default 20000-29999 overlaps"));
  CHECK(ParseEphemeralRange("32768\t60999\n") == PortRange{32768, 60999});
  CHECK_FALSE(ParseEphemeralRange("32768\n"));
  CHECK_FALSE(ParseEphemeralRange("60999 32768"));
}
