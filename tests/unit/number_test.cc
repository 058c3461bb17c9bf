// The checked parser for numbers from outside, and the places that read one: a uid or gid
// in the config, a port, a signal number, API query strings and bodies.
#include <catch2/catch.hpp>

#include <csignal>

#include "supervisor/base/number.h"
#include "supervisor/config/config.h"

using namespace baton;

TEST_CASE("ParseInteger takes the whole text as decimal digits, within its range") {
  CHECK(*ParseInteger<unsigned>("0", "x") == 0u);
  CHECK(*ParseInteger<unsigned>("007", "x") == 7u);
  CHECK(*ParseInteger<unsigned>("4294967294", "uid", 0, kMaxId) == 4294967294u);
  CHECK(*ParseInteger<int>("-12", "x") == -12);
  CHECK(*ParseInteger<int64_t>("-9223372036854775808", "x") == INT64_MIN);
  CHECK(*ParseInteger<uint16_t>("65535", "port") == 65535);
  for (const char* bad : {"", " 1", "1 ", "+1", "1x", "0x10", "1e3", "1.0", "-", "١"})
    CHECK_FALSE(ParseInteger<unsigned>(bad, "x").ok());
  CHECK_FALSE(ParseInteger<unsigned>("-1", "x").ok());  // never read as 4294967295
  CHECK_FALSE(ParseInteger<uint16_t>("65536", "port").ok());
}

TEST_CASE("ParseInteger names what it read and the text, and never wraps") {
  auto wrapped = ParseInteger<unsigned>("4294967296", "user", 0, kMaxId);  // 2^32: unchecked, this was root
  REQUIRE_FALSE(wrapped.ok());
  CHECK(wrapped.status().message() == "user: '4294967296' is out of range (0 to 4294967294)");
  auto reserved = ParseInteger<unsigned>("4294967295", "user", 0, kMaxId);  // (uid_t)-1: "no change"
  REQUIRE_FALSE(reserved.ok());
  CHECK_THAT(reserved.status().message(), Catch::Contains("out of range"));
  auto huge = ParseInteger<uint64_t>("18446744073709551616", "WATCHDOG_USEC");
  REQUIRE_FALSE(huge.ok());
  CHECK_THAT(huge.status().message(), Catch::Contains("WATCHDOG_USEC: '18446744073709551616' is out of range"));
  auto garbage = ParseInteger<int>("3;rm", "LISTEN_FDS", 0, 4096);
  REQUIRE_FALSE(garbage.ok());
  CHECK(garbage.status().message() == "LISTEN_FDS: expected a whole number, got '3;rm'");
  auto below = ParseInteger<int>("0", "LISTEN_PID", 1);
  REQUIRE_FALSE(below.ok());
  auto long_text = ParseInteger<int>(std::string(500, '9'), "x");
  REQUIRE_FALSE(long_text.ok());
  CHECK(long_text.status().message().size() < 120);  // the text is cut in the message
}

namespace {

std::string ConfigError(const std::string& body) {
  auto c = ParseConfig("[service.w]\ncommand = [\"x\"]\n" + body, "baton.toml");
  return c.ok() ? "" : c.status().message();
}

}  // namespace

TEST_CASE("a user or group given as a number must be a valid id, never one that wraps to root") {
  CHECK(ConfigError("user = \"4294967294\"\n").empty());
  CHECK(ConfigError("user = \"0\"\n").empty());  // root, because the config says so
  CHECK(ConfigError("user = \"root\"\n").empty());
  CHECK(ConfigError("user = \"4294967296\"\n") ==
        "baton.toml:3:8: service.w.user: id: '4294967296' is out of range (0 to 4294967294)");
  CHECK_THAT(ConfigError("user = \"4294967295\"\n"),
             Catch::Contains("service.w.user: id: '4294967295' is out of range"));
  CHECK_THAT(ConfigError("user = \"99999999999999999999999\"\n"), Catch::Contains("service.w.user"));
  CHECK_THAT(ConfigError("group = \"4294967296\"\n"), Catch::Contains("baton.toml:3:9: service.w.group"));
  CHECK_THAT(ConfigError("supplementary_groups = [\"10\", \"8589934592\"]\n"),
             Catch::Contains("baton.toml:3:31: service.w.supplementary_groups: id: '8589934592' is out of range"));
  auto daemon = ParseConfig("[daemon]\nsocket_group = \"4294967296\"\n[service.w]\ncommand = [\"x\"]\n", "b.toml");
  REQUIRE_FALSE(daemon.ok());
  CHECK_THAT(daemon.status().message(), Catch::Contains("b.toml:2:16: daemon.socket_group"));
}

TEST_CASE("ports and signal numbers in the config are range-checked") {
  CHECK(ParseSignal("9") == SIGKILL);
  CHECK(ParseSignal("SIGTERM") == SIGTERM);
  CHECK(ParseSignal("0") == -1);
  CHECK(ParseSignal("65") == -1);
  CHECK(ParseSignal("4294967305") == -1);  // 2^32 + 9 is not SIGKILL
  CHECK(ParseSignal("-9") == -1);
}
