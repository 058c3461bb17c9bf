#include <catch2/catch.hpp>

#include "supervisor/control/metrics.h"

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
         {"counters",
          {{"handovers_promoted", 3}, {"handovers_failed", 1}, {"restarts", 5}, {"last_handover_seconds", 0.25}}},
         {"proxies",
          {{{"name", "http"}, {"active", 7}, {"total", 90}, {"errors", 1}, {"bytes_in", 1000}, {"bytes_out", 250000}}}},
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
  CHECK_THAT(text,
             Catch::Contains("baton_service_progressive_step_connections{kind=\"resets\",service=\"web\\\"x\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("baton_listener_info{listener=\"api\",mode=\"kernel\",service=\"web\\\"x\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("baton_listener_info{listener=\"http\",mode=\"proxy\",service=\"web\\\"x\"} 1\n"));
  CHECK_THAT(text, Catch::Contains(
                       "baton_listener_weight_percent{generation=\"4\",listener=\"api\",service=\"web\\\"x\"} 10\n"));
  CHECK_THAT(text,
             Catch::Contains("baton_listener_queued{generation=\"3\",listener=\"api\",service=\"web\\\"x\"} 2\n"));
}
