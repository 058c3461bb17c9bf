// The health endpoint's answers (control/health.h), without sockets.
#include <catch2/catch.hpp>

#include "supervisor/config/config.h"
#include "supervisor/control/health.h"

using namespace baton;

namespace {

HealthView TwoServices(bool api_live) {
  return {false, {{"web", true, "running"}, {"api", api_live, api_live ? "upgrading" : "starting"}}};
}

}  // namespace

TEST_CASE("health: /livez answers while batond runs, /readyz once every service has a live generation") {
  CHECK(AnswerHealth("GET", "/livez", TwoServices(false)).status == 200);
  HealthAnswer not_ready = AnswerHealth("GET", "/readyz", TwoServices(false));
  CHECK(not_ready.status == 503);
  CHECK(not_ready.body["reason"] == "service 'api' has no live generation (starting)");
  CHECK(not_ready.body["services"]["web"] == "running");
  HealthAnswer ready = AnswerHealth("GET", "/readyz", TwoServices(true));
  CHECK(ready.status == 200);
  CHECK(ready.body["ready"] == true);
  CHECK(AnswerHealth("HEAD", "/readyz?from=haproxy", TwoServices(true)).status == 200);
}

TEST_CASE("health: /readyz/SERVICE answers for that service alone") {
  CHECK(AnswerHealth("GET", "/readyz/web", TwoServices(false)).status == 200);
  CHECK(AnswerHealth("GET", "/readyz/api", TwoServices(false)).status == 503);
  HealthAnswer unknown = AnswerHealth("GET", "/readyz/nosuch", TwoServices(true));
  CHECK(unknown.status == 404);
  CHECK(unknown.body["error"] == "no service named 'nosuch'");
}

TEST_CASE("health: a stopping batond is not ready, and nothing but GET and HEAD of the three paths is served") {
  HealthView stopping = TwoServices(true);
  stopping.stopping = true;
  CHECK(AnswerHealth("GET", "/readyz", stopping).status == 503);
  CHECK(AnswerHealth("GET", "/readyz/web", stopping).body["reason"] == "batond is stopping");
  CHECK(AnswerHealth("GET", "/livez", stopping).status == 200);
  CHECK(AnswerHealth("POST", "/readyz", stopping).status == 405);
  CHECK(AnswerHealth("GET", "/v1/status", stopping).status == 404);
  CHECK(AnswerHealth("GET", "/readyzz", stopping).status == 404);
  CHECK(AnswerHealth("GET", "/", stopping).status == 404);
}

TEST_CASE("health: [daemon] health takes a tcp address and nothing else") {
  auto parse = [](const std::string& value) {
    return ParseConfig("[daemon]\nhealth = " + value + "\n[service.web]\ncommand = [\"srv\"]\n", "baton.toml");
  };
  auto ok = parse("\"tcp://127.0.0.1:9901\"");
  REQUIRE(ok.ok());
  REQUIRE(ok->daemon.health);
  CHECK(ok->daemon.health->port == 9901);
  CHECK(parse("\"tcp6://[::1]:9901\"").ok());
  CHECK(parse("\"unix:///run/baton/health.sock\"").status().message() ==
        "baton.toml:2:10: daemon.health: expected tcp://HOST:PORT or tcp6://[HOST]:PORT");
  CHECK(parse("9901").status().message() == "baton.toml:2:10: daemon.health: expected a string");
  CHECK_FALSE(ParseConfig("[service.web]\ncommand = [\"srv\"]\n", "baton.toml")->daemon.health);
}
