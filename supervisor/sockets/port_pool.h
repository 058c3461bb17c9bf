// Hands out loopback ports for workers to bind themselves ({probe_port}, proxy backends)
// from [daemon] port_range. Each hand-out moves on from the last one (so a port just given
// up is not given again soon) and is checked by binding 127.0.0.1 to it first; a port in
// use is skipped. Loop thread only.
#pragma once

#include <cstdint>

#include "supervisor/base/status.h"
#include "supervisor/config/port_range.h"

namespace baton {

// Whether 127.0.0.1:port can be bound now, as a worker would (SO_REUSEADDR: a port whose
// last connection is in TIME_WAIT counts as free).
bool LoopbackPortFree(int port);

class PortPool {
 public:
  // `start` picks where in the range the first hand-out begins (several batonds on one
  // host should not walk the range in step).
  PortPool(PortRange range, uint32_t start);
  void SetRange(PortRange range);
  // A port of the range that 127.0.0.1 could bind just now, or an error once kTries in a
  // row were in use.
  Result<int> Next();
  PortRange range() const { return range_; }

  static constexpr int kTries = 64;

 private:
  PortRange range_;
  uint32_t cursor_;
};

}  // namespace baton
