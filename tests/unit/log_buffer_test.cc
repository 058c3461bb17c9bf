#include <catch2/catch.hpp>

#include "supervisor/logs/log_buffer.h"

using namespace baton;

TEST_CASE("the log buffer keeps the last lines and counts what it dropped") {
  LogBuffer buf(3);
  for (int i = 0; i < 5; ++i) buf.Add(LogLine{0, "v1", 1, 10, false, "line " + std::to_string(i)});
  CHECK(buf.size() == 3);
  CHECK(buf.dropped() == 2);
  auto last = buf.Last(2);
  REQUIRE(last.size() == 2);
  CHECK(last[0].text == "line 3");
  CHECK(last[1].text == "line 4");
  CHECK(buf.Last(100).size() == 3);
  CHECK(last[0].ToJson("web")["stream"] == "stdout");
}
