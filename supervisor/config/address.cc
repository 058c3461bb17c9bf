#include "supervisor/config/address.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <charconv>

namespace baton {
namespace {

Result<uint16_t> ParsePort(std::string_view text, std::string_view whole) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535)
    return Status::InvalidArgument("bad port in address '" + std::string(whole) + "'");
  return static_cast<uint16_t>(value);
}

}  // namespace

std::string SocketAddress::ToString() const {
  switch (kind) {
    case Kind::kTcp: return "tcp://" + host + ":" + std::to_string(port);
    case Kind::kTcp6: return "tcp6://[" + host + "]:" + std::to_string(port);
    case Kind::kUdp:
      if (host.find(':') != std::string::npos) return "udp://[" + host + "]:" + std::to_string(port);
      return "udp://" + host + ":" + std::to_string(port);
    case Kind::kUnix: return "unix://" + path;
    case Kind::kSystemd: return "systemd:" + path;
  }
  return "?";
}

namespace {

// "HOST:PORT" or "[V6]:PORT" of a tcp://, tcp6:// or udp:// address, into `addr`; the host
// must be numeric and of the address's family ("localhost" is the loopback address).
Status ParseHostPort(std::string_view rest, std::string_view text, SocketAddress& addr) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("bad address '" + std::string(text) + "': " + why);
  };
  std::string_view host, port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad("expected [IPV6]:PORT");
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("missing :PORT");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  auto parsed_port = ParsePort(port, text);
  if (!parsed_port.ok()) return parsed_port.status();
  addr.port = *parsed_port;
  addr.host = std::string(host);
  if (addr.host == "localhost") addr.host = addr.kind == SocketAddress::Kind::kTcp6 ? "::1" : "127.0.0.1";

  unsigned char buf[sizeof(in6_addr)];
  bool v4 = inet_pton(AF_INET, addr.host.c_str(), buf) == 1;
  bool v6 = inet_pton(AF_INET6, addr.host.c_str(), buf) == 1;
  if (addr.kind == SocketAddress::Kind::kTcp && !v4)
    return bad("tcp:// needs a numeric IPv4 host (use tcp6:// for IPv6)");
  if (addr.kind == SocketAddress::Kind::kTcp6 && !v6) return bad("tcp6:// needs a numeric IPv6 host in brackets");
  if (addr.kind == SocketAddress::Kind::kUdp && !v4 && !v6) return bad("udp:// needs a numeric IP host");
  return Status::Ok();
}

}  // namespace

Result<SocketAddress> ParseSocketAddress(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("bad address '" + std::string(text) + "': " + why);
  };
  SocketAddress addr;
  std::string_view rest;
  auto starts = [&](std::string_view prefix) {
    if (text.substr(0, prefix.size()) != prefix) return false;
    rest = text.substr(prefix.size());
    return true;
  };
  if (starts("systemd:")) {
    addr.kind = SocketAddress::Kind::kSystemd;
    if (rest.empty() || rest.size() > 255 ||
        rest.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
            std::string_view::npos)
      return bad("expected systemd:NAME, NAME as in the socket unit's FileDescriptorName=");
    addr.path = std::string(rest);
    return addr;
  }
  if (starts("tcp://"))
    addr.kind = SocketAddress::Kind::kTcp;
  else if (starts("tcp6://"))
    addr.kind = SocketAddress::Kind::kTcp6;
  else if (starts("udp://"))
    addr.kind = SocketAddress::Kind::kUdp;
  else if (starts("unix://"))
    addr.kind = SocketAddress::Kind::kUnix;
  else
    return bad("expected tcp://, tcp6://, udp://, unix:// or systemd:");

  if (addr.kind == SocketAddress::Kind::kUnix) {
    if (rest.empty() || rest[0] != '/') return bad("unix socket path must be absolute (unix:///path)");
    if (rest.size() >= sizeof(sockaddr_un{}.sun_path)) return bad("unix socket path longer than 107 bytes");
    addr.path = std::string(rest);
    return addr;
  }

  if (Status st = ParseHostPort(rest, text, addr); !st.ok()) return st;
  return addr;
}

}  // namespace baton
