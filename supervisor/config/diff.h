// What changed between two configurations of one service, by config key. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "supervisor/config/config.h"

namespace baton {

struct ServiceDiff {
  std::vector<std::string> changed;  // keys, e.g. "command", "listen", "replicas", "ready"
  // Changes that only a new generation can apply (command, env, cwd, listeners).
  bool needs_new_generation = false;
  bool empty() const { return changed.empty(); }
  bool Mentions(std::string_view key) const {
    for (const auto& k : changed)
      if (k == key) return true;
    return false;
  }
};

ServiceDiff DiffService(const ServiceConfig& before, const ServiceConfig& after);

}  // namespace baton
