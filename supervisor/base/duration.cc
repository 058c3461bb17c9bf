#include "supervisor/base/duration.h"

#include <charconv>
#include <cmath>

namespace baton {

std::optional<Duration> ParseDuration(std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data() || value < 0 || !std::isfinite(value)) return std::nullopt;
  std::string_view unit(end, text.data() + text.size() - end);
  double ms;
  if (unit == "ms")
    ms = value;
  else if (unit == "s" || unit.empty())
    ms = value * 1000;
  else if (unit == "m")
    ms = value * 60'000;
  else if (unit == "h")
    ms = value * 3'600'000;
  else
    return std::nullopt;
  if (ms > 1e12) return std::nullopt;
  return Duration(static_cast<long long>(std::llround(ms)));
}

std::string FormatDuration(Duration d) {
  auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace baton
