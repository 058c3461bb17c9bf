// ControlApi decisions with a fake Commands: no sockets.
#include <catch2/catch.hpp>

#include "supervisor/control/api.h"
#include "tests/fakes/fake_commands.h"

using namespace baton;
using baton::testing::FakeCommands;

namespace {

struct RecordingResponder : Responder {
  void Reply(int s, const nlohmann::json& b) override {
    status = s;
    body = b;
  }
  void ReplyText(int s, const std::string& type, std::string b) override {
    status = s;
    content_type = type;
    text = b;
    if (type == "application/json") body = nlohmann::json::parse(b);  // status, written as text
  }
  void StartStream() override { streaming = true; }
  void StreamLine(const nlohmann::json& l) override { lines.push_back(l); }
  void StreamText(std::string l) override { lines.push_back(nlohmann::json::parse(l)); }
  void EndStream() override { ended = true; }
  void OnClose(std::function<void()> fn) override { on_close.push_back(std::move(fn)); }
  void Disconnect() {
    for (auto& fn : on_close) fn();
  }
  int status = 0;
  nlohmann::json body;
  std::string content_type, text;
  bool streaming = false, ended = false;
  std::vector<nlohmann::json> lines;
  std::vector<std::function<void()>> on_close;
};

struct Fixture {
  FakeCommands commands;
  ControlApi api{commands};
  std::shared_ptr<RecordingResponder> Call(const std::string& method, const std::string& target,
                                           const std::string& body = "", bool stream = false) {
    auto r = std::make_shared<RecordingResponder>();
    api.Handle(ApiRequest{method, target, body, stream, ""}, r);
    return r;
  }
};

HandoverResult Outcome(bool promoted) {
  HandoverResult r;
  r.promoted = promoted;
  r.version = "v2";
  r.reason = promoted ? "" : "worker 0 exited with status 1 before it was ready";
  return r;
}

}  // namespace

TEST_CASE_METHOD(Fixture, "status routes") {
  auto status = Call("GET", "/v1/status");
  CHECK(status->status == 200);
  CHECK(status->body["daemon"]["pid"] == 1);
  CHECK(status->text.back() == '\n');
  CHECK(Call("GET", "/v1/services")->body["services"][0]["name"] == "web");
  CHECK(Call("GET", "/v1/services/web")->body["name"] == "web");
  auto missing = Call("GET", "/v1/services/nope");
  CHECK(missing->status == 404);
  CHECK(missing->body["error"]["code"] == "not_found");
  CHECK(Call("GET", "/v1/services/web/history?limit=3")->status == 200);
}

TEST_CASE_METHOD(Fixture, "unknown routes and wrong methods get JSON errors") {
  auto r = Call("GET", "/v2/status");
  CHECK(r->status == 404);
  CHECK(r->body["error"]["message"].get<std::string>().find("/v1") != std::string::npos);
  CHECK(Call("GET", "/")->status == 404);
  CHECK(Call("GET", "/v1/services/web/frobnicate")->status == 404);
  auto m = Call("DELETE", "/v1/status");
  CHECK(m->status == 405);
  CHECK(m->body["error"]["code"] == "method_not_allowed");
  CHECK(Call("GET", "/v1/services/web/upgrade")->status == 405);
}

TEST_CASE_METHOD(Fixture, "upgrade request validation") {
  CHECK(Call("POST", "/v1/services/web/upgrade", "{not json")->body["error"]["code"] == "bad_json");
  CHECK(Call("POST", "/v1/services/web/upgrade", "[1,2]")->status == 400);
  CHECK_THAT(Call("POST", "/v1/services/web/upgrade", "{}")->body["error"]["message"].get<std::string>(),
             Catch::Contains("'version' is required"));
  CHECK(Call("POST", "/v1/services/web/upgrade", R"({"version": 2})")->status == 400);
  CHECK(Call("POST", "/v1/services/web/upgrade", R"({"version": "v2", "command": []})")->status == 400);
  CHECK(Call("POST", "/v1/services/web/upgrade", R"({"version": "v2", "command": [1]})")->status == 400);
  CHECK(Call("POST", "/v1/services/web/upgrade", R"({"version": "v2", "env": {"A": 1}})")->status == 400);
  CHECK_THAT(Call("POST", "/v1/services/web/upgrade", R"({"version": "v2", "verison": "x"})")
                 ->body["error"]["message"]
                 .get<std::string>(),
             Catch::Contains("unknown field 'verison'"));
  CHECK(Call("POST", "/v1/services/nope/upgrade", R"({"version": "v2"})")->status == 404);
  CHECK_FALSE(commands.last_upgrade);
}

TEST_CASE_METHOD(Fixture, "upgrade waits for the outcome: 200 when promoted, 422 with the reason when not") {
  auto r = Call("POST", "/v1/services/web/upgrade", R"({"version": "v2", "command": ["./srv"], "env": {"A": "b"}})");
  CHECK(r->status == 0);  // no answer until the outcome
  REQUIRE(commands.last_upgrade);
  CHECK(commands.last_upgrade->version == "v2");
  CHECK(*commands.last_upgrade->command == std::vector<std::string>{"./srv"});
  CHECK(commands.last_upgrade->env.at("A") == "b");
  commands.done(Outcome(true));
  CHECK(r->status == 200);
  CHECK(r->body["result"]["promoted"] == true);

  auto f = Call("POST", "/v1/services/web/upgrade", R"({"version": "v3"})");
  commands.done(Outcome(false));
  CHECK(f->status == 422);
  CHECK(f->body["error"]["code"] == "handover_failed");
  CHECK_THAT(f->body["error"]["message"].get<std::string>(), Catch::Contains("exited with status 1"));
}

TEST_CASE_METHOD(Fixture, "a conflicting upgrade gets 409") {
  commands.busy = true;
  auto r = Call("POST", "/v1/services/web/upgrade", R"({"version": "v2"})");
  CHECK(r->status == 409);
  CHECK(r->body["error"]["code"] == "conflict");
}

TEST_CASE_METHOD(Fixture, "with NDJSON, progress events stream before the result") {
  auto r = Call("POST", "/v1/services/web/upgrade", R"({"version": "v2"})", true);
  CHECK(r->streaming);
  commands.progress(ServiceEvent{EventType::kSpawned, "web", 2, "v2", 1234, "worker 0 started"});
  commands.done(Outcome(true));
  REQUIRE(r->lines.size() == 2);
  CHECK(r->lines[0]["event"]["type"] == "spawned");
  CHECK(r->lines[1]["result"]["promoted"] == true);
  CHECK(r->ended);
}

TEST_CASE_METHOD(Fixture, "rollback takes an optional target and rejects other fields") {
  Call("POST", "/v1/services/web/rollback", "");
  CHECK_FALSE(commands.rollback_to);
  Call("POST", "/v1/services/web/rollback", R"({"to": "v1"})");
  CHECK(*commands.rollback_to == "v1");
  CHECK(Call("POST", "/v1/services/web/rollback", R"({"to": 1})")->status == 400);
  CHECK(Call("POST", "/v1/services/web/rollback", R"({"version": "v1"})")->status == 400);
}

TEST_CASE_METHOD(Fixture, "restart, start, stop, scale and signal reach their commands") {
  auto r = Call("POST", "/v1/services/web/restart");
  commands.done(Outcome(true));
  CHECK(r->status == 200);
  Call("POST", "/v1/services/web/start", "{}");
  auto stop = Call("POST", "/v1/services/web/stop");
  CHECK(stop->status == 0);
  commands.stopped();
  CHECK(stop->status == 200);
  CHECK(stop->body["result"]["stopped"] == true);
  CHECK(Call("POST", "/v1/services/web/scale", R"({"replicas": 3})")->body["replicas"] == 3);
  CHECK(Call("POST", "/v1/services/web/scale", R"({"replicas": "3"})")->status == 400);
  CHECK(Call("POST", "/v1/services/web/scale", "{}")->status == 400);
  // Out of range at full width: 2^32 + 3 must not reach the command as 3.
  for (const char* n : {"4294967299", "-4294967293", "18446744073709551615", "1025", "-1"})
    CHECK(Call("POST", "/v1/services/web/scale", std::string(R"({"replicas": )") + n + "}")->status == 400);
  CHECK(Call("POST", "/v1/services/web/signal", R"({"signal": "HUP"})")->status == 200);
  CHECK(Call("POST", "/v1/services/web/signal", "{}")->status == 400);
  CHECK(Call("POST", "/v1/services/web/restart", R"({"now": true})")->status == 400);
  CHECK(commands.calls ==
        std::vector<std::string>{"restart web", "start web", "stop web", "scale web 3", "signal web HUP"});
}

TEST_CASE_METHOD(Fixture, "logs: the last N lines, or those and then a stream") {
  CHECK(Call("GET", "/v1/services/web/logs?lines=5")->body["lines"][0]["line"] == "old");
  CHECK(commands.calls.back() == "logs web 5");
  CHECK(Call("GET", "/v1/services/web/logs?lines=x")->status == 400);
  CHECK(Call("GET", "/v1/services/web/logs?lines=-1")->status == 400);
  CHECK(Call("GET", "/v1/services/web/logs?lines=18446744073709551617")->status == 400);
  CHECK(Call("GET", "/v1/services/web/logs?lines=100001")->status == 400);
  auto f = Call("GET", "/v1/services/web/logs?follow=1");
  CHECK(f->streaming);
  REQUIRE(f->lines.size() == 1);
  commands.follower({{"line", "new"}});
  CHECK(f->lines.back()["line"] == "new");
  f->Disconnect();
  CHECK(commands.unsubscribed == std::vector<uint64_t>{7});
}

TEST_CASE_METHOD(Fixture, "events stream until the client leaves") {
  auto e = Call("GET", "/v1/events");
  CHECK(e->streaming);
  commands.follower({{"type", "spawned"}});
  CHECK(e->lines.size() == 1);
  e->Disconnect();
  CHECK(commands.unsubscribed == std::vector<uint64_t>{9});
  CHECK(Call("POST", "/v1/events")->status == 405);
}

TEST_CASE_METHOD(Fixture, "reload reports what changed, or why the new config was rejected") {
  CHECK(Call("POST", "/v1/reload")->body["added"][0] == "x");
  commands.reload_error = true;
  auto r = Call("POST", "/v1/reload");
  CHECK(r->status == 400);
  CHECK_THAT(r->body["error"]["message"].get<std::string>(), Catch::Contains("baton.toml:3:1"));
  CHECK(Call("GET", "/v1/reload")->status == 405);
}

TEST_CASE_METHOD(Fixture, "metrics are Prometheus text outside /v1") {
  auto m = Call("GET", "/metrics");
  CHECK(m->status == 200);
  CHECK_THAT(m->content_type, Catch::StartsWith("text/plain"));
  CHECK_THAT(m->text, Catch::Contains("baton_daemon_uptime_seconds"));
}

TEST_CASE_METHOD(Fixture, "wait=drained answers a promotion once the previous generation has drained") {
  auto r = Call("POST", "/v1/services/web/upgrade?wait=drained", R"({"version": "v2"})");
  HandoverResult promoted = Outcome(true);
  promoted.from_generation = 4;
  commands.done(promoted);
  CHECK(r->status == 0);  // still draining
  commands.follower(
      {{"type", "drained"}, {"generation", 3}, {"message", "generation 3 drained in 9.000s"}, {"duration_s", 9.0}});
  CHECK(r->status == 0);  // another generation
  commands.follower(
      {{"type", "drained"}, {"generation", 4}, {"message", "generation 4 took a while"}, {"duration_s", 1.25}});
  CHECK(r->status == 200);
  CHECK(r->body["result"]["drain_s"] == 1.25);
  CHECK(commands.unsubscribed.size() == 1);

  // A drain that finished before the outcome arrived is not missed.
  auto quick = Call("POST", "/v1/services/web/upgrade?wait=drained", R"({"version": "v3"})");
  commands.follower(
      {{"type", "drained"}, {"generation", 5}, {"message", "generation 5 drained in 0.010s"}, {"duration_s", 0.01}});
  promoted.from_generation = 5;
  commands.done(promoted);
  CHECK(quick->status == 200);
  CHECK(quick->body["result"]["drain_s"] == 0.01);
}

TEST_CASE_METHOD(Fixture, "self-upgrade answers 202 and replaces the program only once the answer is delivered") {
  auto r = Call("POST", "/v1/self-upgrade", R"({"binary": "/opt/baton/batond"})");
  CHECK(r->status == 0);  // the binary is being checked
  REQUIRE(commands.self_upgrade_binary == "/opt/baton/batond");
  bool replaced = false;
  commands.self_upgrade_accepted(nlohmann::json{{"attempt", 1}}, [&] { replaced = true; });
  CHECK(r->status == 202);
  CHECK(r->body["attempt"] == 1);
  CHECK_FALSE(replaced);
  r->Disconnect();  // the answer is out and the connection closed
  CHECK(replaced);
}

TEST_CASE_METHOD(Fixture, "self-upgrade errors: bad body, busy daemon, a binary that fails its check") {
  CHECK(Call("POST", "/v1/self-upgrade", R"({"binary": 5})")->status == 400);
  CHECK(Call("POST", "/v1/self-upgrade", R"({"binary": ""})")->status == 400);
  CHECK(Call("GET", "/v1/self-upgrade")->status == 405);
  CHECK_FALSE(commands.self_upgrade_binary);
  commands.busy = true;
  auto busy = Call("POST", "/v1/self-upgrade");
  CHECK(busy->status == 409);
  CHECK_THAT(busy->body["error"]["message"].get<std::string>(), Catch::Contains("draining"));
  commands.busy = false;
  auto r = Call("POST", "/v1/self-upgrade", "");
  REQUIRE(commands.self_upgrade_binary == "");  // the default: the file batond was started from
  commands.self_upgrade_accepted(Status::FailedPrecondition("self-upgrade refused: /bin/false --resume-formats "
                                                            "exited with status 1"),
                                 nullptr);
  CHECK(r->status == 409);
  CHECK_THAT(r->body["error"]["message"].get<std::string>(), Catch::Contains("/bin/false"));
}

TEST_CASE_METHOD(Fixture, "status with usage, and a status stream pushed by batond") {
  CHECK(Call("GET", "/v1/status")->status == 200);
  CHECK_FALSE(commands.status_usage);
  CHECK(Call("GET", "/v1/status?usage=1")->status == 200);
  CHECK(commands.status_usage);

  auto r = Call("GET", "/v1/status?follow=1");
  CHECK(r->streaming);
  REQUIRE(commands.status_interval);
  CHECK(*commands.status_interval == std::chrono::seconds(2));
  commands.status_follower(R"({"daemon":{"pid":1}})");
  REQUIRE(r->lines.size() == 1);
  CHECK(r->lines[0]["daemon"]["pid"] == 1);
  r->Disconnect();
  CHECK(commands.unsubscribed == std::vector<uint64_t>{11});

  CHECK(Call("GET", "/v1/status?follow=1&interval=500ms")->streaming);
  CHECK(*commands.status_interval == std::chrono::milliseconds(500));
  for (const char* bad : {"1ms", "2h", "soon", ""}) {
    auto b = Call("GET", std::string("/v1/status?follow=1&interval=") + bad);
    CHECK(b->status == 400);
    CHECK_FALSE(b->streaming);
  }
}

TEST_CASE_METHOD(Fixture, "the dashboard's address: 404 without [daemon] web") {
  auto none = Call("GET", "/v1/dashboard");
  CHECK(none->status == 404);
  CHECK(none->body["error"]["message"].get<std::string>().find("[daemon] web") != std::string::npos);
  commands.web = true;
  auto some = Call("GET", "/v1/dashboard");
  CHECK(some->status == 200);
  CHECK(some->body["url"] == "http://127.0.0.1:9181/#token=abc");
  CHECK(Call("POST", "/v1/dashboard")->status == 405);
}
