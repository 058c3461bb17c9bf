// A range of TCP ports, as in "20000-29999". batond hands the loopback ports that workers
// bind themselves ({probe_port}, proxy backends) out of [daemon] port_range, which must lie
// outside the kernel's ephemeral range (net.ipv4.ip_local_port_range): a port in that range
// can be taken by any outgoing connection between the hand-out and the worker's bind.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "supervisor/base/status.h"

namespace baton {

struct PortRange {
  int first = 20000;
  int last = 29999;

  bool Overlaps(const PortRange& other) const { return first <= other.last && other.first <= last; }
  int size() const { return last - first + 1; }
  std::string ToString() const { return std::to_string(first) + "-" + std::to_string(last); }
  bool operator==(const PortRange&) const = default;
};

// "FIRST-LAST", 1024 <= FIRST <= LAST <= 65535, at least 16 ports.
Result<PortRange> ParsePortRange(std::string_view text);

// The kernel's ephemeral range from the text of /proc/sys/net/ipv4/ip_local_port_range
// ("32768\t60999\n"), or nothing if the text is not two ports.
std::optional<PortRange> ParseEphemeralRange(std::string_view text);
// The kernel's ephemeral range, read from /proc/sys/net/ipv4/ip_local_port_range.
std::optional<PortRange> ReadEphemeralRange();

}  // namespace baton
