#include "supervisor/handover/recycle_policy.h"

#include "supervisor/base/duration.h"

namespace baton {

namespace {

std::string MiB(uint64_t bytes) { return std::to_string((bytes + (1u << 19)) >> 20) + " MiB"; }

}  // namespace

std::optional<RecycleChoice> ChooseRecycle(const RecycleConfig& config, const std::vector<WorkerSample>& workers) {
  const WorkerSample* heaviest = nullptr;
  const WorkerSample* oldest = nullptr;
  for (const auto& w : workers) {
    if (config.max_memory > 0 && w.rss && *w.rss > config.max_memory && (!heaviest || *w.rss > *heaviest->rss))
      heaviest = &w;
    if (config.max_age.count() > 0 && w.age > config.max_age && (!oldest || w.age > oldest->age)) oldest = &w;
  }
  if (heaviest)
    return RecycleChoice{heaviest->worker_id, ReplaceCause::kMemory,
                         "RSS " + MiB(*heaviest->rss) + " is above max_memory " + MiB(config.max_memory)};
  if (oldest)
    return RecycleChoice{
        oldest->worker_id, ReplaceCause::kAge,
        "it ran " + FormatDuration(oldest->age) + ", beyond max_age " + FormatDuration(config.max_age)};
  return std::nullopt;
}

}  // namespace baton
