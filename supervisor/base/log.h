// Logging: spdlog to stderr, one logger for the daemon. Worker output lines are logged
// through WorkerLine() so that every line is tagged with service, version and pid.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace baton {

void InitLogging(std::string_view level);

}  // namespace baton
