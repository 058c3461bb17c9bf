// End to end with real third-party servers from Debian, wrapped by batond as the examples
// in examples/ show: continuous load (fresh and keep-alive clients) through 20 upgrades
// alternating versions, then an upgrade to a broken version that must fail, be reported,
// and cost the clients nothing. Zero failed requests is the assertion.
#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

const std::string kExamples = std::string(PROJECT_SOURCE_DIR) + "/examples";

std::string Header(const std::string& service) {
  return "[service." + service + "]\ncwd = \"" + kExamples + "\"\nversion = \"v1\"\nbake_time = \"0s\"\n" +
         "env = { BATON_RUN_DIR = \"@DIR@/run\" }\n";
}

}  // namespace

TEST_CASE("nginx, with its listener from NGINX=, upgrades 100 times under load without a failed request") {
  Daemon d(Header("nginx") + R"(
command = ["./nginx/run.sh", "{version}", "{port:http}", "{probe_port}"]
[service.nginx.listen]
http = "tcp://127.0.0.1:0"
[service.nginx.ready]
http = "http://127.0.0.1:{probe_port}/"
timeout = "10s"
interval = "20ms"
[service.nginx.stop]
signal = "QUIT"
timeout = "20s"
)");
  ZeroDropUpgrades(d, "nginx", "v3-broken",
                   {"./nginx/run.sh", "{version}", "{port:http}", "{probe_port}", "no_such_directive on;"},
                   "unknown directive \"no_such_directive\"");
}

TEST_CASE("nginx in proxy mode, binding its own port, upgrades 20 times under load without a failed request") {
  Daemon d(Header("nginx") + R"(
command = ["./nginx/run.sh", "{version}", "{port:http}", "{probe_port}"]
[service.nginx.listen]
http = { address = "tcp://127.0.0.1:0", mode = "proxy" }
[service.nginx.ready]
http = "http://127.0.0.1:{port:http}/"
timeout = "10s"
interval = "20ms"
[service.nginx.stop]
signal = "QUIT"
timeout = "20s"
wait_for_connections = false
)");
  ZeroDropUpgrades(d, "nginx", "v3-broken",
                   {"./nginx/run.sh", "{version}", "{port:http}", "{probe_port}", "no_such_directive on;"},
                   "unknown directive \"no_such_directive\"", 20);
}

TEST_CASE("lighttpd, with its listener from LISTEN_FDS, upgrades 100 times under load without a failed request") {
  Daemon d(Header("lighttpd") + R"(
command = ["./lighttpd/run.sh", "{version}", "{port:http}", "{probe_port}"]
[service.lighttpd.listen]
http = "tcp://127.0.0.1:0"
[service.lighttpd.ready]
tcp = true
timeout = "10s"
interval = "20ms"
[service.lighttpd.stop]
signal = "INT"
timeout = "20s"
)");
  ZeroDropUpgrades(d, "lighttpd", "v3-broken", {"lighttpd", "-D", "-f", "/nonexistent/lighttpd.conf"},
                   "exited with status");
}

TEST_CASE("gunicorn, with its listener from LISTEN_FDS, upgrades 100 times under load without a failed request") {
  Daemon d(Header("gunicorn") + R"(
command = ["/usr/bin/python3", "-m", "gunicorn", "-c", "gunicorn/gunicorn.conf.py", "--chdir", "gunicorn", "app:application"]
[service.gunicorn.listen]
http = "tcp://127.0.0.1:0"
[service.gunicorn.ready]
notify = true
timeout = "20s"
[service.gunicorn.stop]
signal = "TERM"
signal_to = "main"
timeout = "30s"
)");
  ZeroDropUpgrades(d, "gunicorn", "v3-broken",
                   {"/usr/bin/python3", "-m", "gunicorn", "-c", "gunicorn/gunicorn.conf.py", "--chdir", "gunicorn",
                    "no_such_module:application"},
                   // The arbiter's last words; the worker's ImportError may scroll out of the
                   // stderr tail that the reason carries, depending on output order.
                   "Worker failed to boot");
}

TEST_CASE("a Python socket.fromfd server upgrades 100 times under load without a failed request") {
  Daemon d(Header("py") + R"(
command = ["/usr/bin/python3", "python-http/server.py", "{version}"]
[service.py.listen]
http = "tcp://127.0.0.1:0"
[service.py.ready]
notify = true
timeout = "10s"
)");
  ZeroDropUpgrades(d, "py", "v3-broken", {"/usr/bin/python3", "python-http/server.py", "v3", "--fail"},
                   "missing key 'db.url'");
}

TEST_CASE("a server that reports readiness with systemd-notify --ready upgrades 100 times without a failed request") {
  Daemon d(Header("notifier") + R"(
command = ["/usr/bin/python3", "python-http/server.py", "{version}", "--systemd-notify"]
[service.notifier.listen]
http = "tcp://127.0.0.1:0"
[service.notifier.ready]
notify = true
timeout = "10s"
)");
  ZeroDropUpgrades(d, "notifier", "v3-broken",
                   {"/usr/bin/python3", "python-http/server.py", "v3", "--systemd-notify", "--fail"},
                   "missing key 'db.url'");
  CHECK_THAT(d.Service("notifier")["generations"][0]["workers"][0]["status"].get<std::string>(),
             Catch::Contains("serving version v1"));
}
