// Start order (`after`): the pure rules, and what the config refuses.
#include <catch2/catch.hpp>

#include "supervisor/config/config.h"
#include "supervisor/config/start_order.h"

using namespace baton;

namespace {

std::vector<ServiceConfig> Services(const std::vector<std::pair<std::string, std::vector<std::string>>>& graph) {
  std::vector<ServiceConfig> out;
  for (const auto& [name, after] : graph) {
    ServiceConfig s;
    s.name = name;
    s.after = after;
    out.push_back(s);
  }
  return out;
}

}  // namespace

TEST_CASE("start order: what may start now, and what stops first") {
  auto services = Services({{"web", {"db", "cache"}}, {"db", {}}, {"cache", {}}, {"jobs", {"web"}}});
  CHECK(StartableNow(services, {}, {}) == std::vector<std::string>{"db", "cache"});
  CHECK(StartableNow(services, {"db", "cache"}, {"db"}).empty());  // web needs cache live too
  CHECK(StartableNow(services, {"db", "cache"}, {"db", "cache"}) == std::vector<std::string>{"web"});
  CHECK(StartableNow(services, {"db", "cache", "web"}, {"db", "cache", "web"}) == std::vector<std::string>{"jobs"});
  CHECK(StopsBefore(services, "db") == std::vector<std::string>{"web"});
  CHECK(StopsBefore(services, "web") == std::vector<std::string>{"jobs"});
  CHECK(StopsBefore(services, "jobs").empty());
}

TEST_CASE("start order: a cycle is found and named") {
  CHECK_FALSE(FindStartCycle(Services({{"a", {"b"}}, {"b", {"c"}}, {"c", {}}, {"d", {"b", "c"}}})));
  CHECK(*FindStartCycle(Services({{"a", {"b"}}, {"b", {"c"}}, {"c", {"a"}}})) ==
        std::vector<std::string>{"a", "b", "c", "a"});
  CHECK(*FindStartCycle(Services({{"x", {}}, {"a", {"b"}}, {"b", {"a"}}})) == std::vector<std::string>{"a", "b", "a"});
}

TEST_CASE("start order in the config: unknown names, itself and cycles are refused with the names") {
  auto config = [](const std::string& web_after, const std::string& db_after) {
    return ParseConfig("[service.web]\ncommand = [\"/bin/true\"]\nafter = " + web_after +
                           "\n[service.db]\ncommand = [\"/bin/true\"]\nafter = " + db_after + "\n",
                       "baton.toml");
  };
  auto ok = config("[\"db\"]", "[]");
  REQUIRE(ok.ok());
  CHECK(ok->FindService("web")->after == std::vector<std::string>{"db"});
  CHECK(config("[\"dbx\"]", "[]").status().message() ==
        "baton.toml:3:9: service.web.after: no service 'dbx' in this configuration");
  CHECK(config("[\"web\"]", "[]").status().message() ==
        "baton.toml:3:9: service.web.after: a service cannot start after itself");
  CHECK(config("[\"db\"]", "[\"web\"]").status().message() ==
        "baton.toml:6:9: service.db.after: the start order makes a cycle: db -> web -> db");
  CHECK_FALSE(config("\"db\"", "[]").ok());  // an array, not a string
}
