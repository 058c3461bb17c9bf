#include "supervisor/steering/group_layout.h"

#include <algorithm>

namespace baton {

bool GroupLayout::CanLeave(int64_t id, const std::set<int64_t>& routed) const {
  auto index = IndexOf(id);
  if (!index) return false;
  return *index + 1 == members_.size() || !routed.count(members_.back());
}

void GroupLayout::Leave(int64_t id) {
  auto index = IndexOf(id);
  if (!index) return;
  members_[*index] = members_.back();
  members_.pop_back();
}

std::optional<uint32_t> GroupLayout::IndexOf(int64_t id) const {
  auto it = std::find(members_.begin(), members_.end(), id);
  if (it == members_.end()) return std::nullopt;
  return static_cast<uint32_t>(it - members_.begin());
}

}  // namespace baton
