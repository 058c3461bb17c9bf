// The order in which the kernel keeps a reuseport group's sockets, which is what a classic
// BPF program's return value indexes. A socket joins at the end (at listen() for TCP, at
// bind() for UDP); when one leaves, the kernel moves the last socket into its slot. batond
// mirrors that order exactly, since it alone adds and removes the group's sockets.
//
// A socket may leave only when that moves no socket that traffic is routed to: otherwise
// the program would, until replaced, return an index that now names another socket (or
// none, and the kernel would then pick by hash, perhaps a generation that is not ready).
// Pure; keyed by batond's own ids for the sockets.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

namespace baton {

class GroupLayout {
 public:
  void Join(int64_t id) { members_.push_back(id); }
  // Whether `id` can leave without moving any of `routed`.
  bool CanLeave(int64_t id, const std::set<int64_t>& routed) const;
  // Removes `id` as the kernel does: the last member takes its slot.
  void Leave(int64_t id);
  std::optional<uint32_t> IndexOf(int64_t id) const;
  const std::vector<int64_t>& members() const { return members_; }

 private:
  std::vector<int64_t> members_;  // index in the group -> id
};

}  // namespace baton
