// `batonctl top`'s frame, from a status and the events so far.
#include <catch2/catch.hpp>
#include <sstream>

#include "ctl/format.h"
#include "ctl/top.h"

using namespace baton::ctl;

namespace {

nlohmann::json Status(double cpu_s, const nlohmann::json& handover = nullptr) {
  nlohmann::json worker = {{"id", 0},
                           {"pid", 4242},
                           {"state", "ready"},
                           {"restarts", 1},
                           {"status", "serving v1"},
                           {"usage", {{"cpu_s", cpu_s}, {"rss_bytes", 3 << 20}}}};
  nlohmann::json service = {
      {"name", "web"},
      {"state", handover.is_null() ? "running" : "upgrading"},
      {"version", "v1"},
      {"replicas", 2},
      {"generations",
       {{{"id", 1}, {"version", "v1"}, {"state", "live"}, {"workers", {worker}}},
        {{"id", 2},
         {"version", "v2"},
         {"state", "starting"},
         {"workers",
          {{{"id", 0}, {"pid", 5000}, {"state", "ready"}}, {{"id", 1}, {"pid", 5001}, {"state", "starting"}}}}}}}};
  if (!handover.is_null()) service["handover"] = handover;
  return {{"daemon", {{"version", "0.1.0"}, {"pid", 7}, {"uptime_s", 90}, {"rss_bytes", 10 << 20}}},
          {"services", {service}}};
}

std::vector<std::string> Lines(const std::string& frame) {
  std::vector<std::string> out;
  std::istringstream in(frame);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool Has(const std::string& frame, const std::string& text) { return frame.find(text) != std::string::npos; }

}  // namespace

TEST_CASE("top: the daemon, each service's workers with RSS and CPU, and the handover's progress") {
  SetColor(false);
  TopView view;
  std::string first =
      RenderTop(Status(10.0, {{"kind", "upgrade"}, {"version", "v2"}, {"generation", 2}}), view, 1000, 200, 50);
  CHECK(Has(first, "batond 0.1.0  pid 7  up 90s  RSS 10.0 MiB"));
  CHECK(Has(first, "web  upgrading  version v1  replicas 2"));
  CHECK(Has(first, "upgrade to v2 (generation 2) [##########..........] 1/2 ready"));
  CHECK(Has(first, "3.0 MiB"));
  CHECK(Has(first, "serving v1"));
  // CPU is a rate: shown from the second frame on.
  std::string second = RenderTop(Status(10.5), view, 1001, 200, 50);
  CHECK(Has(second, "50.0"));
  CHECK_FALSE(Has(second, "upgrade to"));
  CHECK(Has(second, "web  running"));
}

TEST_CASE("top: a progressive handover by its steps, paused or not") {
  SetColor(false);
  TopView view;
  nlohmann::json progressive = {{"step", 2}, {"steps", {1, 10, 50, 100}}, {"weight", 10}, {"paused", true}};
  std::string frame =
      RenderTop(Status(1, {{"kind", "upgrade"}, {"version", "v2"}, {"generation", 2}, {"progressive", progressive}}),
                view, 5, 200, 50);
  CHECK(Has(frame, "[##..................] step 2/4, 10% of new connections, paused"));
}

TEST_CASE("top: the latest events below, and never more than the terminal holds") {
  SetColor(true);
  TopView view;
  for (int i = 0; i < 20; ++i)
    AddTopEvent(view, {{"type", "spawned"}, {"service", "web"}, {"time", 1000.0 + i}, {"message", std::to_string(i)}});
  CHECK(view.events.size() == TopView::kEvents);
  std::string tall = RenderTop(Status(1), view, 1000, 200, 60);
  CHECK(Has(tall, "events"));
  CHECK(Has(tall, " 19"));
  CHECK_FALSE(Has(tall, " 11\n"));
  std::string small = RenderTop(Status(1), view, 1000, 30, 6);
  auto lines = Lines(small);
  CHECK(lines.size() == 6);
  for (const auto& line : lines) {
    std::string visible;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\033') {
        i = line.find('m', i);
        continue;
      }
      visible += line[i];
    }
    CHECK(visible.size() <= 30);
  }
  SetColor(false);
}
