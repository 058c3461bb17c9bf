// What sockets/ hands workers: the fd conventions, and ports from the pool; what it keeps
// in systemd's file descriptor store.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/sockets/inherited_sockets.h"
#include "supervisor/sockets/kept_sockets.h"
#include "supervisor/sockets/listener_set.h"
#include "supervisor/sockets/port_pool.h"

using namespace baton;
using namespace std::chrono_literals;

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

namespace {

int TcpSocket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

}  // namespace

TEST_CASE("SocketKeeper: names systemd takes, FDSTORE=1 with the socket, FDSTOREREMOVE=1 by name") {
  CHECK(SocketKeeper::ListenerName("web", "http") == "baton/web/http");
  CHECK(SocketKeeper::ListenerName("a:b/c", "x%y z") == "baton/a%3Ab%2Fc/x%25y%20z");
  CHECK(SocketKeeper::GenerationSocketName("baton/web/http", 12) == "baton/web/http/12");

  std::vector<std::pair<std::string, int>> sent;
  SocketKeeper keeper([&](const std::string& m, int fd) { sent.emplace_back(m, fd); });
  keeper.Keep("baton/web/http/3", 7);
  keeper.Forget("baton/web/http/3");
  keeper.Keep(std::string(300, 'x'), 8);  // longer than systemd takes: not sent
  REQUIRE(sent.size() == 2);
  CHECK(sent[0] == std::make_pair(std::string("FDSTORE=1\nFDNAME=baton/web/http/3"), 7));
  CHECK(sent[1] == std::make_pair(std::string("FDSTOREREMOVE=1\nFDNAME=baton/web/http/3"), -1));
}

TEST_CASE("SocketKeeper: the kept listeners follow the running ones, one entry per name") {
  std::vector<std::pair<std::string, int>> sent;
  SocketKeeper keeper([&](const std::string& m, int fd) { sent.emplace_back(m, fd); });
  UniqueFd a(TcpSocket()), b(TcpSocket()), rebound(TcpSocket());
  keeper.KeepListeners({{"baton/web/http", a.get()}, {"baton/web/admin", b.get()}});
  CHECK(sent.size() == 2);
  sent.clear();
  // The same sockets (a reload that changed nothing, or a duplicate of one): nothing to send.
  UniqueFd dup(::dup(a.get()));
  keeper.KeepListeners({{"baton/web/http", dup.get()}, {"baton/web/admin", b.get()}});
  CHECK(sent.empty());
  // http bound anew, admin gone.
  keeper.KeepListeners({{"baton/web/http", rebound.get()}});
  REQUIRE(sent.size() == 3);
  CHECK(sent[0] == std::make_pair(std::string("FDSTOREREMOVE=1\nFDNAME=baton/web/admin"), -1));
  CHECK(sent[1] == std::make_pair(std::string("FDSTOREREMOVE=1\nFDNAME=baton/web/http"), -1));
  CHECK(sent[2] == std::make_pair(std::string("FDSTORE=1\nFDNAME=baton/web/http"), rebound.get()));
}

TEST_CASE("SocketKeeper: used only when $FDSTORE says systemd's store takes descriptors") {
  auto keeper = [] { return SocketKeeper::FromEnvironment([](const std::string&, int) {}) != nullptr; };
  ::unsetenv("FDSTORE");
  CHECK_FALSE(keeper());
  for (const char* value : {"0", "-1", "64x", "99999999999"}) {
    ::setenv("FDSTORE", value, 1);
    CHECK_FALSE(keeper());
  }
  ::setenv("FDSTORE", "64", 1);
  CHECK(keeper());
  ::unsetenv("FDSTORE");
}

TEST_CASE("BoundAddress: what a socket is bound to, read from the socket") {
  UniqueFd tcp(TcpSocket());
  auto a = BoundAddress(tcp.get());
  REQUIRE(a.ok());
  CHECK(a->kind == SocketAddress::Kind::kTcp);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port != 0);
  UniqueFd udp(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 six{};
  six.sin6_family = AF_INET6;
  six.sin6_addr = in6addr_loopback;
  REQUIRE(::bind(udp.get(), reinterpret_cast<sockaddr*>(&six), sizeof six) == 0);
  auto u = BoundAddress(udp.get());
  REQUIRE(u.ok());
  CHECK(u->ToString().rfind("udp://[::1]:", 0) == 0);
  CHECK_FALSE(BoundAddress(-1).ok());
}
