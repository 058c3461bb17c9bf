// Readiness probe targets.
#include <catch2/catch.hpp>

#include "supervisor/health/asio_probe_runner.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("probe targets") {
  auto u = ParseProbeTarget("http://127.0.0.1:9000/healthz?x=1", true);
  REQUIRE(u.ok());
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 9000);
  CHECK(u->path == "/healthz?x=1");
  CHECK(ParseProbeTarget("http://[::1]:81", true)->host == "::1");
  CHECK(ParseProbeTarget("http://127.0.0.1", true)->port == 80);
  CHECK(ParseProbeTarget("127.0.0.1:22", false)->port == 22);
  CHECK_FALSE(ParseProbeTarget("127.0.0.1", false).ok());
  CHECK_FALSE(ParseProbeTarget("ftp://x", true).ok());
}
