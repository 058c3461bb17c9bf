// The state a self-upgrade carries: its codec, without a daemon.
#include <catch2/catch.hpp>

#include "supervisor/upgrade/carried_state.h"

using namespace baton;

namespace {

CarriedState Sample() {
  CarriedState s;
  s.version = "0.1.0";
  s.binary = "/usr/sbin/batond";
  s.config_path = "/etc/baton.toml";
  s.config_text = "[service.web]\ncommand = [\"srv\"]\n";
  s.started_wall = 1700000000.25;
  s.orphans_reaped = 3;
  s.announced_ready = true;
  s.self_upgrade = {{"attempts", 2}};
  s.control_fd = 7;
  s.notify_fd = 8;
  s.program_fd = 9;
  s.children_watch_fd = 10;
  s.fds = {5, 6, 7, 8, 9};
  s.child_fd_limit = std::pair<uint64_t, uint64_t>{1024, ~uint64_t{0}};
  s.exec = {"/tmp/batond.new", 3, "0.1.0", "0.2.0", 1700000100.5};
  CarriedService& web = s.services.emplace_back();
  web.name = "web";
  web.listeners.push_back({"http", "tcp://127.0.0.1:8080", 5, false});
  web.service.fields = {{"next_generation", 4}, {"live", {{"id", 3}}}};
  CarriedWorker& worker = web.service.workers.emplace_back();
  worker.id = 1;
  worker.pid = 4242;
  worker.phase = "ready";
  worker.backend_ports["http"] = 31000;
  worker.stderr_tail = {"listening", "caf\xc3\xa9"};
  worker.restart_in_ms = 250;
  s.children.push_back({4242, 11, 12, -1, "partial line", "", "web v1"});
  web.proxies["api"] = {{"connections", nlohmann::json::array()}};
  web.steering = {{"groups", nlohmann::json::object()}};
  web.logs.push_back({1700000050.5, "v1", 3, 4242, true, "hello"});
  return s;
}

Status Decode(const std::string& text, CarriedState& out) { return DecodeCarriedState(text, out); }

}  // namespace

TEST_CASE("carried state: what is written reads back field for field") {
  CarriedState in = Sample();
  CarriedState out;
  REQUIRE(Decode(EncodeCarriedState(in), out).ok());
  CHECK(EncodeCarriedState(out) == EncodeCarriedState(in));
  CHECK(out.child_fd_limit->second == ~uint64_t{0});
  REQUIRE(out.FindService("web"));
  CHECK(out.FindService("web")->FindListener("http")->fd == 5);
  CHECK_FALSE(out.FindService("api"));
  CHECK(out.exec.to_version == "0.2.0");
  CHECK(out.children_watch_fd == 10);
  const CarriedService& web = *out.FindService("web");
  REQUIRE(web.service.workers.size() == 1);
  CHECK(web.service.workers[0].backend_ports.at("http") == 31000);
  CHECK(web.service.workers[0].stderr_tail.back() == "caf\xc3\xa9");
  CHECK(web.service.workers[0].restart_in_ms == 250);
  CHECK_FALSE(web.service.workers[0].probe_port);
  CHECK(web.service.fields["live"]["id"] == 3);
  CHECK_FALSE(web.service.fields["live"].contains("workers"));
  REQUIRE(web.logs.size() == 1);
  CHECK(web.logs[0].stderr_stream);
  CHECK(web.logs[0].text == "hello");
  REQUIRE(out.children.size() == 1);
  CHECK(out.children[0].stderr_fd == -1);
  CHECK(out.children[0].stdout_partial == "partial line");
}

TEST_CASE("carried state: another format is refused, and the way back is read all the same") {
  auto j = nlohmann::json::parse(EncodeCarriedState(Sample()));
  j["format"] = kCarriedStateFormat + 1;
  CarriedState out;
  Status s = Decode(j.dump(), out);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message() == "state format 2 is not 1");
  CHECK(out.binary == "/usr/sbin/batond");
  CHECK(out.program_fd == 9);
  CHECK(out.fds == std::vector<int>{5, 6, 7, 8, 9});
}

TEST_CASE("carried state: a field of the wrong type is named, an unknown one is ignored") {
  auto j = nlohmann::json::parse(EncodeCarriedState(Sample()));
  j["written_by_a_newer_program"] = true;
  CarriedState out;
  CHECK(Decode(j.dump(), out).ok());

  auto error = [](nlohmann::json bad) {
    CarriedState ignored;
    Status s = DecodeCarriedState(bad.dump(), ignored);
    REQUIRE_FALSE(s.ok());
    return s.message();
  };
  auto bad = j;
  bad["services"][0]["listeners"][0]["fd"] = "5";
  CHECK(error(bad) == "services[0]: listeners[0]: field 'fd' must be an integer");
  bad = j;
  bad["control_fd"] = 4294967296;
  CHECK(error(bad) == "field 'control_fd' must be an integer in range");
  bad = j;
  bad["fds"] = {5, -1};
  CHECK(error(bad) == "fds: -1 is not a descriptor");
  bad = j;
  bad["config"].erase("text");
  CHECK(error(bad) == "config: field 'text' is required");
  CHECK(DecodeCarriedState("not json", out).message() == "the carried state is not a JSON object");
  bad = j;
  bad["services"][0]["service"]["live"]["workers"][0]["pid"] = 1LL << 40;
  CHECK(error(bad) == "services[0]: service: live: workers[0]: field 'pid' must be an integer in range");
  bad = j;
  bad["services"][0]["service"]["live"]["workers"][0]["backend_ports"]["http"] = "31000";
  CHECK(error(bad) == "services[0]: service: live: workers[0]: backend_ports: 'http' must be an integer");
  bad = j;
  bad["services"][0]["service"]["live"]["workers"][0]["id"] = 2147483647;
  CHECK(error(bad) == "services[0]: service: live: workers[0]: field 'id' must be an integer in range");
  bad = j;
  bad["children"][0].erase("pidfd");
  CHECK(error(bad) == "children[0]: field 'pidfd' is required");
}

TEST_CASE("carried state: a malformed log line ends the lines, and nothing else") {
  auto j = nlohmann::json::parse(EncodeCarriedState(Sample()));
  auto& logs = j["services"][0]["logs"];
  logs.push_back(logs[0]);
  logs.push_back({{"line", "no time"}});
  logs.push_back(logs[0]);
  CarriedState out;
  REQUIRE(DecodeCarriedState(j.dump(), out).ok());
  CHECK(out.FindService("web")->logs.size() == 2);
}
