// Small pure pieces: addresses, placeholders, fd conventions, sd_notify parsing,
// durations, backoff, probe targets, the PROXY protocol header.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/base/duration.h"
#include "supervisor/handover/backoff.h"
#include "supervisor/health/asio_probe_runner.h"
#include "supervisor/proxy/proxy_protocol.h"
#include "supervisor/tunnel/tunnel.h"
#include "supervisor/notify/notify_message.h"
#include "supervisor/config/address.h"
#include "supervisor/sockets/listener_set.h"
#include "supervisor/config/placeholders.h"
#include "supervisor/sockets/port_pool.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("addresses") {
  auto a = ParseSocketAddress("tcp://0.0.0.0:8080");
  REQUIRE(a.ok());
  CHECK(a->port == 8080);
  CHECK(a->ToString() == "tcp://0.0.0.0:8080");
  auto b = ParseSocketAddress("tcp6://[::1]:0");
  REQUIRE(b.ok());
  CHECK(b->host == "::1");
  CHECK(b->ToString() == "tcp6://[::1]:0");
  CHECK(ParseSocketAddress("unix:///run/x.sock")->path == "/run/x.sock");
  CHECK(ParseSocketAddress("udp://127.0.0.1:53")->kind == SocketAddress::Kind::kUdp);
  CHECK(ParseSocketAddress("tcp://localhost:1")->host == "127.0.0.1");
  CHECK_FALSE(ParseSocketAddress("http://x:1").ok());
  CHECK_FALSE(ParseSocketAddress("unix://relative.sock").ok());
  CHECK_FALSE(ParseSocketAddress("unix:///" + std::string(200, 'a')).ok());
  CHECK_FALSE(ParseSocketAddress("tcp://127.0.0.1").ok());
  CHECK_FALSE(ParseSocketAddress("tcp://127.0.0.1:x").ok());
  CHECK_FALSE(ParseSocketAddress("tcp6://127.0.0.1:80").ok());
}

TEST_CASE("placeholders") {
  TemplateVars v;
  v.service = "web";
  v.version = "v2";
  v.fds = {{"http", 3}, {"admin", 4}};
  v.ports = {{"http", 8080}};
  v.probe_port = 41000;
  CHECK(*ExpandTemplate("--fd={fd:admin} --port {port:http} {version} {service} {probe_port}", v) ==
        "--fd=4 --port 8080 v2 web 41000");
  CHECK(*ExpandTemplate("{\"json\": {\"a\": 1}} {Version} {} ${HOME}", v) ==
        "{\"json\": {\"a\": 1}} {Version} {} ${HOME}");
  CHECK_THAT(ExpandTemplate("{fd:nope}", v).status().message(), Catch::Contains("names no listener"));
  CHECK_THAT(ExpandTemplate("{port:admin}", v).status().message(), Catch::Contains("no TCP or UDP listener"));
  CHECK_THAT(ExpandTemplate("{versoin}", v).status().message(), Catch::Contains("unknown placeholder"));
  v.probe_port.reset();
  CHECK_FALSE(ExpandTemplate("{probe_port}", v).ok());
}

TEST_CASE("listener conventions: systemd, einhorn, nginx") {
  auto env = ListenerEnvironment({"http", "admin"});
  std::map<std::string, std::string> m(env.begin(), env.end());
  CHECK(m["LISTEN_FDS"] == "2");
  CHECK(m["LISTEN_FDNAMES"] == "http:admin");
  CHECK(m["EINHORN_FD_COUNT"] == "2");
  CHECK(m["EINHORN_FD_0"] == "3");
  CHECK(m["EINHORN_FD_1"] == "4");
  CHECK(m["NGINX"] == "3;4;");
  CHECK(m.count("LISTEN_PID") == 0);  // set by the child itself
  CHECK(ListenerEnvironment({}).empty());
}

TEST_CASE("sd_notify messages") {
  auto m = ParseNotifyMessage("READY=1\nSTATUS=warming up: 50%\n\nbogus\n=x\nMAINPID=7");
  CHECK(m.ready());
  CHECK(*m.status() == "warming up: 50%");
  CHECK(m.fields.at("MAINPID") == "7");
  CHECK(m.fields.size() == 3);
  CHECK_FALSE(ParseNotifyMessage("READY=0").ready());
  CHECK(ParseNotifyMessage("STOPPING=1").stopping());
  CHECK(ParseNotifyMessage(std::string("READY=1\0junk", 12)).fields.empty());  // NUL: not a valid line
}

TEST_CASE("durations") {
  CHECK(*ParseDuration("250ms") == 250ms);
  CHECK(*ParseDuration("5s") == 5s);
  CHECK(*ParseDuration("1.5s") == 1500ms);
  CHECK(*ParseDuration("2m") == 120s);
  CHECK(*ParseDuration("3") == 3s);
  CHECK_FALSE(ParseDuration("-1s"));
  CHECK_FALSE(ParseDuration("5 s"));
  CHECK_FALSE(ParseDuration("fast"));
  CHECK(FormatDuration(1500ms) == "1500ms");
  CHECK(FormatDuration(3s) == "3s");
}

TEST_CASE("restart backoff grows and is capped") {
  RestartConfig c;
  c.initial_backoff = 500ms;
  c.multiplier = 2;
  c.max_backoff = 3s;
  CHECK(RestartDelay(c, 1) == 500ms);
  CHECK(RestartDelay(c, 2) == 1s);
  CHECK(RestartDelay(c, 3) == 2s);
  CHECK(RestartDelay(c, 4) == 3s);
  CHECK(RestartDelay(c, 100) == 3s);
}

TEST_CASE("probe targets") {
  auto u = ParseProbeTarget("http://127.0.0.1:9000/healthz?x=1", true);
  REQUIRE(u.ok());
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 9000);
  CHECK(u->path == "/healthz?x=1");
  CHECK(ParseProbeTarget("http://[::1]:81", true)->host == "::1");
  CHECK(ParseProbeTarget("http://127.0.0.1", true)->port == 80);
  CHECK(ParseProbeTarget("127.0.0.1:22", false)->port == 22);
  CHECK_FALSE(ParseProbeTarget("127.0.0.1", false).ok());
  CHECK_FALSE(ParseProbeTarget("ftp://x", true).ok());
}

TEST_CASE("PROXY protocol v2 header") {
  auto v4 = [](const char* ip, int port) {
    sockaddr_storage s{};
    auto& a = reinterpret_cast<sockaddr_in&>(s);
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, ip, &a.sin_addr);
    return s;
  };
  std::string h = ProxyV2Header(v4("10.1.2.3", 51000), v4("127.0.0.1", 8080));
  REQUIRE(h.size() == 16 + 12);
  CHECK(h.substr(0, 12) == std::string("\r\n\r\n\0\r\nQUIT\n", 12));
  CHECK(static_cast<unsigned char>(h[12]) == 0x21);  // version 2, PROXY
  CHECK(static_cast<unsigned char>(h[13]) == 0x11);  // TCP over IPv4
  CHECK(h[14] == 0);
  CHECK(h[15] == 12);
  CHECK(h.substr(16, 4) == std::string("\x0a\x01\x02\x03", 4));
  CHECK(h.substr(20, 4) == std::string("\x7f\x00\x00\x01", 4));
  CHECK(h.substr(24, 2) == std::string("\xc7\x38", 2));  // 51000
  CHECK(h.substr(26, 2) == std::string("\x1f\x90", 2));  // 8080

  sockaddr_storage s6{}, l6{};
  auto& a6 = reinterpret_cast<sockaddr_in6&>(s6);
  a6.sin6_family = AF_INET6;
  a6.sin6_addr = in6addr_loopback;
  l6 = s6;
  h = ProxyV2Header(s6, l6);
  CHECK(static_cast<unsigned char>(h[13]) == 0x21);  // TCP over IPv6
  CHECK(h.size() == 16 + 36);

  sockaddr_storage unix_peer{};
  unix_peer.ss_family = AF_UNIX;
  h = ProxyV2Header(unix_peer, unix_peer);
  REQUIRE(h.size() == 16);
  CHECK(static_cast<unsigned char>(h[12]) == 0x20);  // LOCAL: no address to report
  CHECK(h[13] == 0);
}

TEST_CASE("tunnel reconnect backoff: full jitter over a doubling, capped ceiling") {
  CHECK(TunnelBackoff(1s, 60s, 1, 0.0) == 0s);
  CHECK(TunnelBackoff(1s, 60s, 1, 0.5) == 500ms);
  CHECK(TunnelBackoff(1s, 60s, 3, 0.5) == 2s);    // ceiling 4s
  CHECK(TunnelBackoff(1s, 60s, 10, 0.5) == 30s);  // ceiling 512s, capped at 60s
  CHECK(TunnelBackoff(1s, 60s, 100, 0.999) < 60s);
}

TEST_CASE("PortPool: ports from its range, checked free, moving on from the last one") {
  PortPool pool(PortRange{30100, 30115}, 3);
  auto first = pool.Next();
  REQUIRE(first.ok());
  CHECK(*first >= 30100);
  CHECK(*first <= 30115);
  // A port that something holds is skipped.
  auto hold = [](int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 1) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  };
  std::vector<int> held;
  for (int port = 30100; port <= 30115; ++port)
    if (int fd = hold(port); fd >= 0) held.push_back(fd);
  auto none = pool.Next();
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().message() == "no free port in daemon.port_range 30100-30115 after 64 tries");
  for (int fd : held) ::close(fd);
  // Once free, the next one follows the last handed out (after 64 tries, 4 laps of 16).
  auto again = pool.Next();
  REQUIRE(again.ok());
  CHECK(*again == 30100 + (*first - 30100 + 1 + 64) % 16);
}
