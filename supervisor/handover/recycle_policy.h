// Which worker of the live generation [service.X.recycle] replaces next: pure, so that
// the thresholds are tested without processes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/config/config.h"
#include "supervisor/handover/generation.h"

namespace baton {

struct WorkerSample {
  int worker_id = 0;
  Duration age{};
  std::optional<uint64_t> rss;  // bytes; unknown when it could not be read
};

struct RecycleChoice {
  int worker_id = 0;
  ReplaceCause cause = ReplaceCause::kAge;
  std::string why;  // "RSS 210 MiB is above max_memory 200 MiB"
};

// The worker furthest above max_memory, else the oldest beyond max_age; none when every
// worker is within bounds.
std::optional<RecycleChoice> ChooseRecycle(const RecycleConfig& config, const std::vector<WorkerSample>& workers);

}  // namespace baton
