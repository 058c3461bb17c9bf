// What sockets/ hands workers: the fd conventions, and ports from the pool.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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
