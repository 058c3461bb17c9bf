#include <catch2/catch.hpp>

#include "supervisor/config/diff.h"
#include "supervisor/control/metrics.h"
#include "supervisor/logs/log_buffer.h"

using namespace baton;
using namespace std::chrono_literals;

TEST_CASE("metrics render every family from the status document") {
  nlohmann::json status = {
      {"daemon", {{"uptime_s", 12.5}, {"open_fds", 17}, {"rss_bytes", 4096}, {"notify_ignored", 2}}},
      {"services",
       {{{"name", "web\"x"},
         {"state", "running"},
         {"version", "v2"},
         {"generations",
          {{{"id", 4}, {"state", "live"}, {"workers", {{{"state", "ready"}}, {{"state", "ready"}}}}},
           {{"id", 3}, {"state", "draining"}, {"workers", {{{"state", "stopping"}}}}}}},
         {"counters", {{"handovers_promoted", 3}, {"handovers_failed", 1}, {"restarts", 5}, {"last_handover_seconds", 0.25}}},
         {"proxies", {{{"name", "http"}, {"active", 7}, {"total", 90}, {"errors", 1}, {"bytes_in", 1000},
                       {"bytes_out", 250000}}}},
         {"listeners",
          {{{"name", "http"}, {"mode", "proxy"}},
           {{"name", "api"},
            {"mode", "kernel"},
            {"steering",
             {{"sockets",
               {{{"index", 0}, {"anchor", true}, {"weight", 0}, {"queued", 0}},
                {{"index", 1}, {"generation", 3}, {"weight", 90}, {"queued", 2}},
                {{"index", 2}, {"generation", 4}, {"weight", 10}, {"queued", 0}}}}}}}}},
         {"handover",
          {{"kind", "upgrade"},
           {"progressive",
            {{"step", 2}, {"weight", 10}, {"this_step", {{"connections", 40}, {"failures", 0}, {"resets", 1}}}}}}}}}}};
  std::string text = RenderMetrics(status);
  CHECK_THAT(text, Catch::Contains("baton_daemon_uptime_seconds 12.5\n"));
  CHECK_THAT(text, Catch::Contains("baton_daemon_open_fds 17\n"));
  CHECK_THAT(text, Catch::Contains("baton_service_generation{service=\"web\\\"x\"} 4\n"));
  CHECK_THAT(text, Catch::Contains("baton_service_workers{service=\"web\\\"x\",state=\"ready\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("baton_service_workers{service=\"web\\\"x\",state=\"stopping\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("baton_service_handovers_total{outcome=\"failed\",service=\"web\\\"x\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("baton_service_restarts_total{service=\"web\\\"x\"} 5\n"));
  CHECK_THAT(text, Catch::Contains("# TYPE baton_service_handovers_total counter\n"));
  CHECK_THAT(text, Catch::Contains("baton_service_info{service=\"web\\\"x\",state=\"running\",version=\"v2\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("baton_proxy_connections{listener=\"http\",service=\"web\\\"x\"} 7\n"));
  CHECK_THAT(text, Catch::Contains("baton_proxy_errors_total{listener=\"http\",service=\"web\\\"x\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("baton_proxy_sent_bytes_total{listener=\"http\",service=\"web\\\"x\"} 250000\n"));
  CHECK_THAT(text, Catch::Contains("# TYPE baton_proxy_connections gauge\n"));
  CHECK_THAT(text, Catch::Contains("baton_service_progressive_step{service=\"web\\\"x\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("baton_service_progressive_weight_percent{service=\"web\\\"x\"} 10\n"));
  CHECK_THAT(text, Catch::Contains("baton_service_progressive_step_connections{kind=\"resets\",service=\"web\\\"x\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("baton_listener_info{listener=\"api\",mode=\"kernel\",service=\"web\\\"x\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("baton_listener_info{listener=\"http\",mode=\"proxy\",service=\"web\\\"x\"} 1\n"));
  CHECK_THAT(text,
             Catch::Contains("baton_listener_weight_percent{generation=\"4\",listener=\"api\",service=\"web\\\"x\"} 10\n"));
  CHECK_THAT(text, Catch::Contains("baton_listener_queued{generation=\"3\",listener=\"api\",service=\"web\\\"x\"} 2\n"));
}

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
  c.listeners.push_back(ListenerConfig{"http", *ParseSocketAddress("tcp://127.0.0.1:80"), 4096, 3, 1, ListenMode::kKernel, {}});
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
