#include "supervisor/proxy/proxy_protocol.h"

#include <netinet/in.h>

#include <cstring>

namespace baton {

namespace {
constexpr char kSignature[] = "\r\n\r\n\0\r\nQUIT\n";  // 12 bytes, the NUL included
constexpr unsigned char kVersion2Proxy = 0x21, kVersion2Local = 0x20;
constexpr unsigned char kTcp4 = 0x11, kTcp6 = 0x21, kUnspec = 0x00;

void Append(std::string& out, const void* data, size_t n) { out.append(static_cast<const char*>(data), n); }
}  // namespace

std::string ProxyV2Header(const sockaddr_storage& client, const sockaddr_storage& local) {
  std::string out(kSignature, 12);
  std::string body;
  unsigned char command = kVersion2Proxy, family = kUnspec;
  if (client.ss_family == AF_INET && local.ss_family == AF_INET) {
    family = kTcp4;
    const auto& c = reinterpret_cast<const sockaddr_in&>(client);
    const auto& l = reinterpret_cast<const sockaddr_in&>(local);
    Append(body, &c.sin_addr, 4);
    Append(body, &l.sin_addr, 4);
    Append(body, &c.sin_port, 2);  // already in network order
    Append(body, &l.sin_port, 2);
  } else if (client.ss_family == AF_INET6 && local.ss_family == AF_INET6) {
    family = kTcp6;
    const auto& c = reinterpret_cast<const sockaddr_in6&>(client);
    const auto& l = reinterpret_cast<const sockaddr_in6&>(local);
    Append(body, &c.sin6_addr, 16);
    Append(body, &l.sin6_addr, 16);
    Append(body, &c.sin6_port, 2);
    Append(body, &l.sin6_port, 2);
  } else {
    command = kVersion2Local;
  }
  out.push_back(static_cast<char>(command));
  out.push_back(static_cast<char>(family));
  out.push_back(static_cast<char>((body.size() >> 8) & 0xff));
  out.push_back(static_cast<char>(body.size() & 0xff));
  return out + body;
}

}  // namespace baton
