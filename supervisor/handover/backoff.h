// Crash-restart backoff: initial * multiplier^(failures-1), capped at max_backoff. Pure.
#pragma once

#include <algorithm>
#include <cmath>

#include "supervisor/config/config.h"

namespace baton {

inline Duration RestartDelay(const RestartConfig& config, int failures) {
  if (failures <= 0) return Duration(0);
  double ms = static_cast<double>(config.initial_backoff.count()) * std::pow(config.multiplier, failures - 1);
  ms = std::min(ms, static_cast<double>(config.max_backoff.count()));
  return Duration(static_cast<long long>(ms));
}

}  // namespace baton
