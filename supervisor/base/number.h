// The one parser for integers that come from outside batond: the config (a uid given as a
// string, a port in an address), API query strings and bodies, the environment
// (LISTEN_FDS, WATCHDOG_USEC), sd_notify fields and /proc. It takes decimal digits only
// (a leading '-' for signed types), the whole text and nothing else, within [min, max];
// anything else is an error that names what was being read and the text it got. Never
// cast a wider parse to a narrower type: a uid of "4294967296" wrapped to 0 (root) that way.
#pragma once

#include <charconv>
#include <limits>
#include <string>
#include <string_view>

#include "supervisor/base/status.h"

namespace baton {

template <typename T>
Result<T> ParseInteger(std::string_view text, std::string_view what, T min = std::numeric_limits<T>::min(),
                       T max = std::numeric_limits<T>::max()) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  std::string quoted = "'" + std::string(text.substr(0, 64)) + (text.size() > 64 ? "...'" : "'");
  if (text.empty() || (ec != std::errc() && ec != std::errc::result_out_of_range) || end != text.data() + text.size())
    return Status::InvalidArgument(std::string(what) + ": expected a whole number, got " + quoted);
  if (ec == std::errc::result_out_of_range || value < min || value > max)
    return Status::InvalidArgument(std::string(what) + ": " + quoted + " is out of range (" + std::to_string(min) +
                                   " to " + std::to_string(max) + ")");
  return value;
}

// uid_t and gid_t values a config may name: (uid_t)-1 means "no change" to setuid(2) and is refused.
inline constexpr unsigned kMaxId = std::numeric_limits<unsigned>::max() - 1;

}  // namespace baton
