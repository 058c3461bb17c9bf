// The PROXY protocol v2 header batond sends backends.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/proxy/proxy_protocol.h"

using namespace baton;
using namespace std::chrono_literals;

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
