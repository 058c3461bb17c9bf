// batonctl's human views, from JSON as batond sends it.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>

#include "ctl/format.h"

using namespace baton;
using namespace baton::ctl;

namespace {

const double kNow = 1700000000;

struct UtcNoColor {
  UtcNoColor() {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
    SetColor(false);
  }
};

}  // namespace

TEST_CASE_METHOD(UtcNoColor, "ctl: a table aligns its columns, and colour codes take no width") {
  CHECK(Table({"A", "LONGER"}, {{"xyz", "1"}, {"q", "22"}}) ==
        "A    LONGER\n"
        "xyz  1\n"
        "q    22\n");
  SetColor(true);
  std::string coloured = Table({"STATE", "N"}, {{State("running"), "1"}});
  CHECK(coloured.find("\033[32mrunning\033[0m  1") != std::string::npos);
  CHECK(coloured.find("\033[1mSTATE\033[0m    ") == 0);
}

TEST_CASE_METHOD(UtcNoColor, "ctl: status shows each service, its live generation's readiness and its tunnels") {
  nlohmann::json status = {
      {"daemon", {{"version", "0.1.0"}, {"pid", 10}, {"started_at", kNow - 300}, {"config", "/etc/baton.toml"}}},
      {"services",
       {{{"name", "web"},
         {"state", "running"},
         {"version", "v2"},
         {"replicas", 2},
         {"listeners", {{{"name", "http"}, {"address", "127.0.0.1:8080"}, {"mode", "shared"}}}},
         {"generations",
          {{{"id", 4}, {"state", "live"}, {"workers", {{{"state", "ready"}}, {{"state", "starting"}}}}}}},
         {"last_handover", {{"kind", "upgrade"}, {"version", "v2"}, {"promoted", true}}}}}},
      {"tunnels",
       {{{"name", "edge"},
         {"remote_bind", "0.0.0.0:80"},
         {"to", "web.http"},
         {"sessions", {{{"edge", "a"}, {"state", "up"}, {"connected_since", kNow - 90}, {"channels_open", 3}}}}}}}};
  std::string out = FormatStatus(status, kNow);
  CHECK(out.rfind("batond 0.1.0, pid 10, up 5m, config /etc/baton.toml\n\n", 0) == 0);
  CHECK(out.find("web      running  v2       4    1/2    http=127.0.0.1:8080 (shared)  upgrade v2 promoted\n") !=
        std::string::npos);
  CHECK(out.find("edge    a     0.0.0.0:80 -> web.http  up 90s  3") != std::string::npos);

  nlohmann::json waiting = {{"daemon", status["daemon"]},
                            {"services",
                             {{{"name", "jobs"},
                               {"state", "waiting"},
                               {"version", nullptr},
                               {"replicas", 1},
                               {"generations", nlohmann::json::array()},
                               {"waiting_for", {"db", "web"}}}}}};
  CHECK(FormatStatus(waiting, kNow).find("\njobs: waiting for db, web to be live\n") != std::string::npos);
  CHECK(FormatService(waiting["services"][0], kNow).find("waiting for db, web to be live\n") != std::string::npos);
  // A malformed answer shows as missing fields; it must not crash batonctl.
  for (const auto& junk : {nlohmann::json::object(), nlohmann::json::array(), nlohmann::json(42),
                           nlohmann::json{{"services", {{{"generations", 7}, {"listeners", "x"}}}}}}) {
    CHECK_NOTHROW(FormatStatus(junk, kNow));
    CHECK_NOTHROW(FormatService(junk, kNow));
  }
}

TEST_CASE_METHOD(UtcNoColor, "ctl: a service shows its steering split, its last handover and every worker") {
  nlohmann::json s = {
      {"name", "web"},
      {"state", "upgrading"},
      {"version", "v1"},
      {"replicas", 1},
      {"listeners",
       {{{"name", "http"},
         {"address", "127.0.0.1:8080"},
         {"mode", "kernel"},
         {"steering",
          {{"sockets", {{{"generation", 1}, {"weight", 90}}, {{"generation", 2}, {"weight", 10}, {"queued", 4}}}}}}}}},
      {"handover", {{"kind", "upgrade"}, {"version", "v2"}, {"generation", 2}}},
      {"last_handover",
       {{"kind", "restart"},
        {"version", "v1"},
        {"promoted", false},
        {"duration_s", 2.5},
        {"reason", "not ready in 2s"}}},
      {"generations",
       {{{"id", 1},
         {"version", "v1"},
         {"state", "live"},
         {"started_at", kNow - 7200},
         {"workers",
          {{{"id", 0}, {"pid", 99}, {"state", "ready"}, {"restarts", 0}, {"backend_ports", {{"http", 41000}}}}}}}}}};
  std::string out = FormatService(s, kNow);
  CHECK(out.find("listen http  127.0.0.1:8080  kernel: gen 1 90%, gen 2 10% (4 queued)\n") != std::string::npos);
  CHECK(out.find("in progress: upgrade to v2 (generation 2)\n") != std::string::npos);
  CHECK(out.find("last handover: restart v1 failed in 2.500s: not ready in 2s\n") != std::string::npos);
  CHECK(out.find("1    v1       live   2h   0       99   ready  0         -          port http=41000\n") !=
        std::string::npos);
}

TEST_CASE_METHOD(UtcNoColor, "ctl: events, log lines, history, reload and the outcome of a handover") {
  ServiceEvent e{EventType::kPromoted, "web", 2, "v2", 0, "took over", kNow + 1.5};
  CHECK(FormatEvent(e, kNow) == "+1.500s  web gen 2 v2  promoted  took over\n");
  CHECK(FormatEvent(ServiceEvent{EventType::kTunnelUp, "tunnel:edge", 0, "", 0, "", 0}, 0)
            .find("tunnel:edge gen -   tunnel_up") != std::string::npos);

  CHECK(FormatLogLine({{"time", kNow}, {"version", "v2"}, {"pid", 7}, {"stream", "stderr"}, {"line", "boom"}}) ==
        "2023-11-14 22:13:20 v2 7 err boom\n");
  CHECK(FormatHistory({{"releases",
                        {{{"at", kNow},
                          {"generation", 3},
                          {"version", "v3"},
                          {"kind", "upgrade"},
                          {"outcome", "failed"},
                          {"duration_s", 12.25},
                          {"reason", "crashed"}},
                         {{"at", kNow},
                          {"generation", 4},
                          {"version", "v4"},
                          {"kind", "upgrade"},
                          {"outcome", "promoted"},
                          {"duration_s", 1.5},
                          {"replacements", {{"health", 2}, {"memory", 1}}}}}}}) ==
        "WHEN                 GEN  VERSION  KIND     OUTCOME   TOOK    REPLACED            REASON\n"
        "2023-11-14 22:13:20  3    v3       upgrade  failed    12.2s   -                   crashed\n"
        "2023-11-14 22:13:20  4    v4       upgrade  promoted  1.500s  2 health, 1 memory  \n");
  CHECK(FormatReload({{"added", {"api"}},
                      {"removed", nlohmann::json::array()},
                      {"changed", {{{"service", "web"}, {"keys", {"replicas"}}}}},
                      {"warnings", {"x"}}}) == "added: [\"api\"]\nchanged: web [\"replicas\"]\nwarning: x\n");

  HandoverResult ok;
  ok.promoted = true;
  ok.version = "v2";
  ok.generation = 5;
  ok.duration_s = 0.5;
  ok.from_version = "v1";
  ok.drain_s = 1.25;
  CHECK(FormatOutcome(ok) == "promoted v2 (generation 5) in 0.500s; v1 drained in 1.250s\n");
  HandoverResult failed;
  failed.version = "v3";
  failed.reason = "worker 0 exited with status 1";
  CHECK(FormatOutcome(failed) ==
        "failed: v3 was not promoted: worker 0 exited with status 1\nnothing is still serving\n");
}
