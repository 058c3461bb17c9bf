// Durations as the config writes them and as logs print them.
#include <catch2/catch.hpp>

#include "supervisor/base/duration.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("durations") {
  CHECK(*ParseDuration("250ms") == 250ms);
  CHECK(*ParseDuration("5s") == 5s);
  CHECK(*ParseDuration("1.5s") == 1500ms);
  CHECK(*ParseDuration("2m") == 120s);
  CHECK(*ParseDuration("3") == 3s);
  CHECK_FALSE(ParseDuration("-1s"));
  CHECK_FALSE(ParseDuration("5 s"));
  CHECK_FALSE(ParseDuration("fast"));
  CHECK(FormatDuration(1500ms) == "1500ms");
  CHECK(FormatDuration(3s) == "3s");
}
