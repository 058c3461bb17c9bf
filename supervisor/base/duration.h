// Human durations in config and API: "250ms", "5s", "2m", "1h", or a bare number of seconds.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "supervisor/base/clock.h"

namespace baton {

std::optional<Duration> ParseDuration(std::string_view text);
std::string FormatDuration(Duration d);

}  // namespace baton
