// sd_notify datagrams, parsed.
#include <catch2/catch.hpp>

#include "supervisor/notify/notify_message.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("sd_notify messages") {
  auto m = ParseNotifyMessage("READY=1\nSTATUS=warming up: 50%\n\nbogus\n=x\nMAINPID=7");
  CHECK(m.ready());
  CHECK(*m.status() == "warming up: 50%");
  CHECK(m.fields.at("MAINPID") == "7");
  CHECK(m.fields.size() == 3);
  CHECK_FALSE(ParseNotifyMessage("READY=0").ready());
  CHECK(ParseNotifyMessage("STOPPING=1").stopping());
  CHECK(ParseNotifyMessage(std::string("READY=1\0junk", 12)).fields.empty());  // NUL: not a valid line
}
