// The web dashboard over a real socket: its token, what it serves without one, what it
// refuses, read-only mode, its status stream, and carried over by a self-upgrade. (The page
// itself is driven in a real browser by tests/browser.)
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

struct Dashboard {
  int port = 0;
  std::string token;
};

// Where the dashboard is, from `batonctl dashboard`.
Dashboard Find(Daemon& d) {
  auto r = d.Ctl({"dashboard"});
  REQUIRE(r.exit_code == 0);
  auto colon = r.output.rfind(':', r.output.find("/#token="));
  auto hash = r.output.find("/#token=");
  REQUIRE(hash != std::string::npos);
  Dashboard out;
  out.port = std::stoi(r.output.substr(colon + 1, hash - colon - 1));
  out.token = r.output.substr(hash + 8, 64);
  REQUIRE(r.output.rfind("http://127.0.0.1:", 0) == 0);
  return out;
}

std::string Bearer(const Dashboard& b) { return "Authorization: Bearer " + b.token + "\r\n"; }

}  // namespace

TEST_CASE("web dashboard: the page for anyone, data and actions only with the token") {
  Daemon d(WebService(1), "web = \"tcp://127.0.0.1:0\"");
  d.Start();
  Dashboard b = Find(d);
  struct stat st {};
  REQUIRE(::stat((d.dir() + "/state/web.token").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  auto page = HttpRequest(b.port, "GET", "/");
  CHECK(page.status == 200);
  CHECK(page.body.find("<script src=\"/app.js\"") != std::string::npos);
  CHECK(page.head.find("Content-Security-Policy: default-src 'self'") != std::string::npos);
  CHECK(HttpRequest(b.port, "GET", "/app.js").body.find("Bearer") != std::string::npos);

  // No token, or a wrong one: 401 and no data.
  for (const char* path : {"/v1/status", "/v1/events", "/v1/services/web", "/metrics"}) {
    auto r = HttpRequest(b.port, "GET", path);
    CHECK(r.status == 401);
    CHECK(r.head.find("WWW-Authenticate: Bearer") != std::string::npos);
    CHECK(r.body.find("\"unauthorized\"") != std::string::npos);
    CHECK(r.body.find("\"pid\"") == std::string::npos);
    CHECK(HttpRequest(b.port, "GET", path, nullptr, "Authorization: Bearer " + std::string(64, '0') + "\r\n").status ==
          401);
  }
  CHECK(HttpRequest(b.port, "POST", "/v1/services/web/restart").status == 401);
  // A cookie is no token.
  CHECK(HttpRequest(b.port, "GET", "/v1/status", nullptr, "Cookie: token=" + b.token + "\r\n").status == 401);

  auto status = HttpRequest(b.port, "GET", "/v1/status", nullptr, Bearer(b));
  CHECK(status.status == 200);
  CHECK(nlohmann::json::parse(status.body)["services"][0]["name"] == "web");
  // What only an operator at the host may do is not on the dashboard.
  CHECK(HttpRequest(b.port, "POST", "/v1/self-upgrade", nullptr, Bearer(b)).status == 403);
  CHECK(HttpRequest(b.port, "POST", "/v1/reload", nullptr, Bearer(b)).status == 403);
  CHECK(HttpRequest(b.port, "GET", "/v1/dashboard", nullptr, Bearer(b)).body.find(b.token) == std::string::npos);
  // An action with the token.
  auto restart = HttpRequest(b.port, "POST", "/v1/services/web/restart", nullptr, Bearer(b));
  CHECK(restart.status == 200);
  CHECK(nlohmann::json::parse(restart.body)["result"]["promoted"] == true);
  // The daemon runs on after all of it.
  CHECK(d.Api("GET", "/v1/status").status == 200);
}

TEST_CASE("web dashboard: read_only allows reading only, and the token is kept across restarts") {
  Daemon d(WebService(1), "web = { address = \"tcp://127.0.0.1:0\", read_only = true }");
  d.Start();
  Dashboard b = Find(d);
  CHECK(d.Ctl({"dashboard"}).output.find("(read-only)") != std::string::npos);
  CHECK(HttpRequest(b.port, "GET", "/v1/status", nullptr, Bearer(b)).status == 200);
  auto refused = HttpRequest(b.port, "POST", "/v1/services/web/restart", nullptr, Bearer(b));
  CHECK(refused.status == 403);
  CHECK(refused.body.find("read-only") != std::string::npos);
  CHECK(HttpRequest(b.port, "GET", "/v1/dashboard", nullptr, Bearer(b)).body == "{\"read_only\":true}\n");
  REQUIRE(d.Stop() == 0);
  d.Start();
  CHECK(Find(d).token == b.token);
}

TEST_CASE("status stream: pushed at once, after a handover's events, and carried over a self-upgrade") {
  Daemon d(WebService(1), "web = \"tcp://127.0.0.1:0\"");
  d.Start();
  Dashboard before = Find(d);
  {
    LineStream stream(d.socket(), "GET", "/v1/status?follow=1&interval=1h");
    REQUIRE(stream.status() == 200);
    auto first = stream.Next();
    REQUIRE(first.is_object());
    const auto& worker = first["services"][0]["generations"][0]["workers"][0];
    CHECK(worker["usage"]["rss_bytes"].get<uint64_t>() > 0);
    CHECK(worker["usage"]["cpu_s"].is_number());
    // The interval is an hour: the next status comes from the upgrade's events.
    REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
    bool saw_v2 = false;
    for (int i = 0; i < 20 && !saw_v2; ++i) {
      auto next = stream.Next();
      REQUIRE(next.is_object());
      saw_v2 = next["services"][0]["version"] == "v2";
    }
    CHECK(saw_v2);
  }
  auto r = d.Ctl({"self-upgrade"});
  REQUIRE(r.exit_code == 0);
  Dashboard after = Find(d);
  CHECK(after.port == before.port);
  CHECK(after.token == before.token);
  CHECK(HttpRequest(after.port, "GET", "/v1/status", nullptr, Bearer(after)).status == 200);
}
