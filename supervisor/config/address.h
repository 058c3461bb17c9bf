// Listener addresses as written in config: tcp://HOST:PORT, tcp6://[HOST]:PORT,
// unix:///absolute/path, udp://HOST:PORT, systemd:NAME (a socket batond inherits from
// systemd socket activation, by its LISTEN_FDNAMES name). Parsing is pure; binding lives
// in listener_set.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "supervisor/base/status.h"

namespace baton {

struct SocketAddress {
  enum class Kind { kTcp, kTcp6, kUnix, kUdp, kSystemd };
  Kind kind = Kind::kTcp;
  std::string host;   // numeric IPv4/IPv6 literal (no brackets) for tcp/tcp6/udp
  uint16_t port = 0;  // 0 asks the kernel for a free port
  std::string path;   // for unix; the name for systemd

  bool is_stream() const { return kind != Kind::kUdp; }
  bool is_inet() const { return kind == Kind::kTcp || kind == Kind::kTcp6 || kind == Kind::kUdp; }
  std::string ToString() const;
  friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
};

Result<SocketAddress> ParseSocketAddress(std::string_view text);

}  // namespace baton
