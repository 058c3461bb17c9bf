// Delays before a restart (handover/backoff.h) and before a tunnel reconnects (tunnel/).
#include <catch2/catch.hpp>

#include "supervisor/handover/backoff.h"
#include "supervisor/tunnel/tunnel.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("restart backoff grows and is capped") {
  RestartConfig c;
  c.initial_backoff = 500ms;
  c.multiplier = 2;
  c.max_backoff = 3s;
  CHECK(RestartDelay(c, 1) == 500ms);
  CHECK(RestartDelay(c, 2) == 1s);
  CHECK(RestartDelay(c, 3) == 2s);
  CHECK(RestartDelay(c, 4) == 3s);
  CHECK(RestartDelay(c, 100) == 3s);
}

TEST_CASE("tunnel reconnect backoff: full jitter over a doubling, capped ceiling") {
  CHECK(TunnelBackoff(1s, 60s, 1, 0.0) == 0s);
  CHECK(TunnelBackoff(1s, 60s, 1, 0.5) == 500ms);
  CHECK(TunnelBackoff(1s, 60s, 3, 0.5) == 2s);    // ceiling 4s
  CHECK(TunnelBackoff(1s, 60s, 10, 0.5) == 30s);  // ceiling 512s, capped at 60s
  CHECK(TunnelBackoff(1s, 60s, 100, 0.999) < 60s);
}
