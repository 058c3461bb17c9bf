// The control protocol shared by batond and batonctl: names, routes and the JSON of its types.
#include <catch2/catch.hpp>

#include <set>

#include "supervisor/control/protocol.h"
#include "supervisor/handover/service.h"

using namespace baton;

TEST_CASE("protocol: every event type has one name, and the name reads back") {
  std::set<std::string> names;
  for (int i = 0; i < kEventTypeCount; ++i) {
    auto type = static_cast<EventType>(i);
    std::string name = EventTypeName(type);
    CHECK(name != "?");
    CHECK(names.insert(name).second);
    CHECK(ParseEventType(name) == type);
  }
  CHECK_FALSE(ParseEventType("promotedx"));
  CHECK_FALSE(ParseEventType(""));
  CHECK(IsTrouble(EventType::kCrashed));
  CHECK_FALSE(IsTrouble(EventType::kPromoted));
}

TEST_CASE("protocol: service actions, their methods and their paths") {
  using protocol::ServiceAction;
  for (auto a : {ServiceAction::kHistory, ServiceAction::kLogs, ServiceAction::kUpgrade, ServiceAction::kRollback,
                 ServiceAction::kRestart, ServiceAction::kStart, ServiceAction::kStop, ServiceAction::kScale,
                 ServiceAction::kSignal, ServiceAction::kPromote, ServiceAction::kPause, ServiceAction::kResume})
    CHECK(protocol::ParseAction(protocol::ActionName(a)) == a);
  CHECK_FALSE(protocol::ParseAction("upgrade/x"));
  CHECK(std::string(protocol::MethodOf(ServiceAction::kLogs)) == "GET");
  CHECK(std::string(protocol::MethodOf(ServiceAction::kUpgrade)) == "POST");
  CHECK(protocol::ActionPath("web", ServiceAction::kRollback) == "/v1/services/web/rollback");
  CHECK(protocol::ServicePath("web") == "/v1/services/web");
  auto route = protocol::ParseServicePath("/v1/services/web/rollback");
  REQUIRE(route);
  CHECK(route->service == "web");
  CHECK(route->action == ServiceAction::kRollback);
  CHECK_FALSE(protocol::ParseServicePath("/v1/services/web")->action);
  CHECK_FALSE(protocol::ParseServicePath("/v1/services/web/")->action);
  CHECK_FALSE(protocol::ParseServicePath("/v1/services/web/explode"));
  CHECK_FALSE(protocol::ParseServicePath("/v1/services/"));
  CHECK_FALSE(protocol::ParseServicePath("/v1/status"));
}

TEST_CASE("protocol: a target splits into its path and its query once") {
  auto t = protocol::ParseTarget("/v1/services/web/logs?lines=5&follow&x=a=b");
  CHECK(t.path == "/v1/services/web/logs");
  CHECK(t.query.at("lines") == "5");
  CHECK(t.query.at("follow").empty());
  CHECK(t.query.at("x") == "a=b");
  CHECK(protocol::ParseTarget("/v1/status").query.empty());
  CHECK(protocol::ParseTarget("/v1/status?").query.empty());
}

TEST_CASE("protocol: an upgrade request reads back, and a bad one names the field") {
  UpgradeRequest req{"v2", std::vector<std::string>{"./server", "--port", "{port:http}"}, {{"MODE", "canary"}}};
  auto back = UpgradeRequest::FromJson(req.ToJson());
  REQUIRE(back.ok());
  CHECK(back->version == "v2");
  CHECK(back->command == req.command);
  CHECK(back->env == req.env);

  auto error = [](const char* text) {
    auto r = UpgradeRequest::FromJson(nlohmann::json::parse(text));
    REQUIRE_FALSE(r.ok());
    return r.status().message();
  };
  CHECK(error(R"({})") == "field 'version' is required (a non-empty string)");
  CHECK(error(R"({"version": ""})") == "field 'version' is required (a non-empty string)");
  CHECK(error(R"({"version": 2})") == "field 'version' must be a string");
  CHECK(error(R"({"version": "v2", "cmd": []})") == "unknown field 'cmd'");
  CHECK(error(R"({"version": "v2", "command": []})") == "field 'command' must be a non-empty array of strings");
  CHECK(error(R"({"version": "v2", "command": ["a", 1]})") == "field 'command' must be a non-empty array of strings");
  CHECK(error(R"({"version": "v2", "env": {"A": 1}})") == "field 'env.A' must be a string");
}

TEST_CASE("protocol: a handover result and an event read back as they were written") {
  HandoverResult r;
  r.promoted = true;
  r.kind = HandoverKind::kAutoRollback;
  r.version = "v1";
  r.from_version = "v2";
  r.from_generation = 7;
  r.generation = 8;
  r.duration_s = 1.5;
  r.drain_s = 0.25;
  auto back = HandoverResult::FromJson(r.ToJson());
  REQUIRE(back.ok());
  CHECK(back->ToJson() == r.ToJson());
  CHECK(back->kind == HandoverKind::kAutoRollback);

  nlohmann::json bad = r.ToJson();
  bad["kind"] = "sideways";
  CHECK_FALSE(HandoverResult::FromJson(bad).ok());
  bad = r.ToJson();
  bad["generation"] = "8";
  CHECK(HandoverResult::FromJson(bad).status().message() == "field 'generation' must be an integer");

  ServiceEvent e{EventType::kDrained, "web", 3, "v1", 4242, "all connections closed", 1700000000.5, 0.75};
  auto event = ServiceEvent::FromJson(e.ToJson());
  REQUIRE(event.ok());
  CHECK(event->ToJson() == e.ToJson());
  CHECK(event->duration_s == 0.75);
  CHECK_FALSE(ServiceEvent::FromJson({{"type", "teleported"}, {"service", "web"}}).ok());
}

TEST_CASE("protocol: every state name batond reports has the meaning an operator reads in it") {
  auto meaning = [](const char* name) { return MeaningOfState(name); };
  CHECK(meaning(ServiceStateName(ServiceState::kRunning)) == StateMeaning::kServing);
  CHECK(meaning(ServiceStateName(ServiceState::kDown)) == StateMeaning::kFailed);
  CHECK(meaning(ServiceStateName(ServiceState::kFatal)) == StateMeaning::kFailed);
  CHECK(meaning(ServiceStateName(ServiceState::kStopped)) == StateMeaning::kAtRest);
  for (auto s : {ServiceState::kStarting, ServiceState::kBaking, ServiceState::kUpgrading, ServiceState::kStopping})
    CHECK(meaning(ServiceStateName(s)) == StateMeaning::kTransition);
  CHECK(meaning(GenStateName(GenState::kLive)) == StateMeaning::kServing);
  CHECK(meaning(GenStateName(GenState::kFailed)) == StateMeaning::kFailed);
  CHECK(meaning(GenStateName(GenState::kExited)) == StateMeaning::kAtRest);
  CHECK(meaning(GenStateName(GenState::kDraining)) == StateMeaning::kTransition);
  CHECK(meaning(WorkerPhaseName(WorkerPhase::kReady)) == StateMeaning::kServing);
  CHECK(meaning(WorkerPhaseName(WorkerPhase::kExited)) == StateMeaning::kAtRest);
  CHECK(meaning(WorkerPhaseName(WorkerPhase::kBackoff)) == StateMeaning::kTransition);
}
