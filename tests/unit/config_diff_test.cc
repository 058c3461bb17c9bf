#include <catch2/catch.hpp>

#include "supervisor/config/diff.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("config diffs name what changed and whether a new generation is needed") {
  ServiceConfig a;
  a.name = "web";
  a.command = {"srv"};
  ServiceConfig b = a;
  CHECK(DiffService(a, b).empty());
  b.replicas = 3;
  b.bake_time = std::chrono::seconds(1);
  auto d = DiffService(a, b);
  CHECK(d.changed == std::vector<std::string>{"replicas", "bake_time"});
  CHECK_FALSE(d.needs_new_generation);
  b.env["A"] = "1";
  CHECK(DiffService(a, b).needs_new_generation);
  ServiceConfig c = a;
  c.listeners.push_back(
      ListenerConfig{"http", *ParseSocketAddress("tcp://127.0.0.1:80"), 4096, 3, 1, ListenMode::kKernel, {}});
  ServiceConfig c_moved = c;
  c_moved.listeners[0].line = 9;  // only its place in the file moved
  CHECK(DiffService(c, c_moved).empty());
  CHECK(DiffService(a, c).changed == std::vector<std::string>{"listen"});
  ServiceConfig proxied = c;
  proxied.listeners[0].mode = ListenMode::kProxy;
  CHECK(DiffService(c, proxied).changed == std::vector<std::string>{"listen"});
  ServiceConfig longer_idle = proxied;
  longer_idle.listeners[0].proxy.idle_timeout = 1h;
  CHECK(DiffService(proxied, longer_idle).needs_new_generation);
  longer_idle.stop.drain_timeout = 1s;
  CHECK(DiffService(proxied, longer_idle).changed == std::vector<std::string>{"listen", "stop"});
}
