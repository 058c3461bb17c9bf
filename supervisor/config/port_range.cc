#include "supervisor/config/port_range.h"

#include <fstream>
#include <sstream>

#include "supervisor/base/number.h"

namespace baton {

Result<PortRange> ParsePortRange(std::string_view text) {
  auto dash = text.find('-');
  if (dash == std::string_view::npos) return Status::InvalidArgument("expected FIRST-LAST, such as \"20000-29999\"");
  auto first = ParseInteger<int>(text.substr(0, dash), "first port", 1024, 65535);
  if (!first.ok()) return first.status();
  auto last = ParseInteger<int>(text.substr(dash + 1), "last port", 1024, 65535);
  if (!last.ok()) return last.status();
  PortRange r{*first, *last};
  if (r.last < r.first + 15) return Status::InvalidArgument("the range must hold at least 16 ports");
  return r;
}

std::optional<PortRange> ParseEphemeralRange(std::string_view text) {
  auto space = text.find_first_of(" \t");
  if (space == std::string_view::npos) return std::nullopt;
  auto second = text.find_first_not_of(" \t", space);
  auto end = text.find_first_of(" \t\n", second);
  if (second == std::string_view::npos) return std::nullopt;
  auto first = ParseInteger<int>(text.substr(0, space), "ip_local_port_range", 1, 65535);
  auto last = ParseInteger<int>(text.substr(second, end == std::string_view::npos ? end : end - second),
                                "ip_local_port_range", 1, 65535);
  if (!first.ok() || !last.ok() || *last < *first) return std::nullopt;
  return PortRange{*first, *last};
}

std::optional<PortRange> ReadEphemeralRange() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  std::stringstream text;
  text << in.rdbuf();
  return ParseEphemeralRange(text.str());
}

}  // namespace baton
