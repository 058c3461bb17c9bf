// The values the config is made of: socket addresses and the {placeholder} language.
#include <catch2/catch.hpp>

#include "supervisor/config/address.h"
#include "supervisor/config/config.h"
#include "supervisor/config/placeholders.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("addresses") {
  auto a = ParseSocketAddress("tcp://0.0.0.0:8080");
  REQUIRE(a.ok());
  CHECK(a->port == 8080);
  CHECK(a->ToString() == "tcp://0.0.0.0:8080");
  auto b = ParseSocketAddress("tcp6://[::1]:0");
  REQUIRE(b.ok());
  CHECK(b->host == "::1");
  CHECK(b->ToString() == "tcp6://[::1]:0");
  CHECK(ParseSocketAddress("unix:///run/x.sock")->path == "/run/x.sock");
  CHECK(ParseSocketAddress("udp://127.0.0.1:53")->kind == SocketAddress::Kind::kUdp);
  CHECK(ParseSocketAddress("tcp://localhost:1")->host == "127.0.0.1");
  CHECK_FALSE(ParseSocketAddress("http://x:1").ok());
  CHECK_FALSE(ParseSocketAddress("unix://relative.sock").ok());
  CHECK_FALSE(ParseSocketAddress("unix:///" + std::string(200, 'a')).ok());
  CHECK_FALSE(ParseSocketAddress("tcp://127.0.0.1").ok());
  CHECK_FALSE(ParseSocketAddress("tcp://127.0.0.1:x").ok());
  CHECK_FALSE(ParseSocketAddress("tcp6://127.0.0.1:80").ok());
}

TEST_CASE("placeholders") {
  TemplateVars v;
  v.service = "web";
  v.version = "v2";
  v.fds = {{"http", 3}, {"admin", 4}};
  v.ports = {{"http", 8080}};
  v.probe_port = 41000;
  CHECK(*ExpandTemplate("--fd={fd:admin} --port {port:http} {version} {service} {probe_port}", v) ==
        "--fd=4 --port 8080 v2 web 41000");
  CHECK(*ExpandTemplate("{\"json\": {\"a\": 1}} {Version} {} ${HOME}", v) ==
        "{\"json\": {\"a\": 1}} {Version} {} ${HOME}");
  CHECK_THAT(ExpandTemplate("{fd:nope}", v).status().message(), Catch::Contains("names no listener"));
  CHECK_THAT(ExpandTemplate("{port:admin}", v).status().message(), Catch::Contains("no TCP or UDP listener"));
  CHECK_THAT(ExpandTemplate("{versoin}", v).status().message(), Catch::Contains("unknown placeholder"));
  v.probe_port.reset();
  CHECK_FALSE(ExpandTemplate("{probe_port}", v).ok());
}

// toml++ 3.3.0 reaches __builtin_unreachable() deciding whether these are whitespace
// (libraries/CMakeLists.txt): one from each range where it does, after a value, as a key
// and after indentation, each refused with its place, in every build the tests run in.
TEST_CASE("config: a character TOML does not allow there is refused with its line and column") {
  for (std::string ch : {"\u00a1", "\u0416", "\u2c60", "\ufb30"}) {
    for (auto [text, column] : {std::pair{"[daemon]\nlog_level = \"info\"" + ch + "\n", 19},
                                std::pair{"[daemon]\n" + ch + " = 1\n", 1}, std::pair{"[daemon]\n  " + ch + "\n", 3}}) {
      auto parsed = ParseConfig(text, "baton.toml");
      REQUIRE_FALSE(parsed.ok());
      CHECK_THAT(parsed.status().message(),
                 Catch::StartsWith("baton.toml:2:" + std::to_string(column) + ":") && Catch::Contains(ch));
    }
  }
}
