// The web dashboard's decisions: its config, its token, who may do what on it, and when a
// follower of the status gets a fresh one.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "supervisor/config/config.h"
#include "supervisor/control/status_feed.h"
#include "supervisor/control/web_access.h"
#include "supervisor/control/web_assets.h"
#include "tests/fakes/fake_clock.h"

using namespace baton;
using namespace std::chrono_literals;

namespace {

Result<Config> WithDaemon(const std::string& daemon) {
  return ParseConfig("[daemon]\n" + daemon + "\n[service.web]\ncommand = [\"srv\"]\n", "baton.toml");
}

ApiRequest Request(std::string method, std::string target, std::string authorization = "") {
  ApiRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.authorization = std::move(authorization);
  return r;
}

struct TempDir {
  TempDir() {
    char name[] = "/tmp/baton-web-XXXXXX";
    path = ::mkdtemp(name);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

const std::string kToken(64, 'a');
const std::string kBearer = "Bearer " + kToken;

}  // namespace

TEST_CASE("daemon.web: an address, or a table with read_only, and errors that name the key") {
  auto plain = WithDaemon("web = \"tcp://127.0.0.1:9181\"");
  REQUIRE(plain.ok());
  REQUIRE(plain->daemon.web);
  CHECK(plain->daemon.web->port == 9181);
  CHECK_FALSE(plain->daemon.web_read_only);
  auto table = WithDaemon("web = { address = \"tcp6://[::1]:0\", read_only = true }");
  REQUIRE(table.ok());
  CHECK(table->daemon.web->host == "::1");
  CHECK(table->daemon.web_read_only);
  CHECK_FALSE(WithDaemon("")->daemon.web);
  CHECK(WithDaemon("web = \"unix:///run/x.sock\"").status().message() ==
        "baton.toml:2:7: daemon.web: expected tcp://HOST:PORT or tcp6://[HOST]:PORT");
  CHECK(WithDaemon("web = { read_only = true }").status().message() ==
        "baton.toml:2:7: daemon.web: needs an address, such as \"tcp://127.0.0.1:9181\"");
  CHECK(WithDaemon("web = { address = \"tcp://127.0.0.1:1\", read_only = \"yes\" }")
            .status()
            .message()
            .find("daemon.web.read_only") != std::string::npos);
  CHECK(WithDaemon("web = { address = \"tcp://127.0.0.1:1\", token = \"x\" }")
            .status()
            .message()
            .find("daemon.web.token") != std::string::npos);
}

TEST_CASE("the dashboard's token: made once, mode 0600, refused when others may read it") {
  TempDir dir;
  auto first = LoadOrCreateWebToken(dir.path);
  REQUIRE(first.ok());
  CHECK(first->size() == 64);
  struct stat st {};
  REQUIRE(::stat((dir.path + "/web.token").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto again = LoadOrCreateWebToken(dir.path);
  REQUIRE(again.ok());
  CHECK(*again == *first);
  TempDir other;
  CHECK(*LoadOrCreateWebToken(other.path) != *first);

  ::chmod((dir.path + "/web.token").c_str(), 0644);
  auto open = LoadOrCreateWebToken(dir.path);
  CHECK(open.status().message() == dir.path +
                                       "/web.token may be read by others (mode 644): make it 0600, or "
                                       "remove it for a new token");
  std::ofstream(dir.path + "/web.token", std::ios::trunc) << "not a token\n";
  ::chmod((dir.path + "/web.token").c_str(), 0600);
  CHECK(LoadOrCreateWebToken(dir.path).status().message().find("holds no token") != std::string::npos);
}

TEST_CASE("a bearer token matches only exactly") {
  CHECK(BearerMatches(kBearer, kToken));
  CHECK(BearerMatches("bearer " + kToken, kToken));
  CHECK_FALSE(BearerMatches("", kToken));
  CHECK_FALSE(BearerMatches(kToken, kToken));
  CHECK_FALSE(BearerMatches("Bearer " + kToken + "a", kToken));
  CHECK_FALSE(BearerMatches("Bearer " + std::string(63, 'a') + "b", kToken));
  CHECK_FALSE(BearerMatches("Basic " + kToken + "x", kToken));
  CHECK_FALSE(BearerMatches("Bearer ", ""));
}

TEST_CASE("the dashboard: pages for anyone, its API only with the token, and only what it offers") {
  auto route = [](const ApiRequest& r, bool read_only = false) { return DecideWebRequest(r, kToken, read_only); };
  // The page and its files hold no data.
  CHECK(route(Request("GET", "/")).route == WebRoute::kAsset);
  CHECK(route(Request("GET", "/")).asset == "/index.html");
  CHECK(route(Request("GET", "/app.js?v=1")).asset == "/app.js");
  for (const char* path : {"/index.html", "/app.js", "/app.css"}) {
    const WebAsset* asset = FindWebAsset(path);
    REQUIRE(asset);
    CHECK(asset->body.size() > 100);
  }
  CHECK(FindWebAsset("/etc/passwd") == nullptr);
  CHECK(route(Request("GET", "/../etc/passwd")).route == WebRoute::kNotFound);
  // No data without the token.
  for (const char* path : {"/v1/status", "/v1/events", "/v1/services/web", "/metrics", "/v1/dashboard"}) {
    CHECK(route(Request("GET", path)).route == WebRoute::kUnauthorized);
    CHECK(route(Request("GET", path, "Bearer wrong")).route == WebRoute::kUnauthorized);
  }
  CHECK(route(Request("POST", "/v1/services/web/upgrade")).route == WebRoute::kUnauthorized);
  // With it: what the page shows, and its actions.
  CHECK(route(Request("GET", "/v1/status?follow=1", kBearer)).route == WebRoute::kApi);
  CHECK(route(Request("GET", "/v1/services/web/logs?follow=1", kBearer)).route == WebRoute::kApi);
  CHECK(route(Request("GET", "/v1/dashboard", kBearer)).route == WebRoute::kInfo);
  for (const char* action : {"upgrade", "rollback", "restart", "promote", "pause", "resume", "scale"})
    CHECK(route(Request("POST", std::string("/v1/services/web/") + action, kBearer)).route == WebRoute::kApi);
  // Not what only an operator at the host may do.
  for (const char* path : {"/v1/self-upgrade", "/v1/reload", "/v1/services/web/signal", "/v1/services/web/stop"}) {
    auto d = route(Request("POST", path, kBearer));
    CHECK(d.route == WebRoute::kForbidden);
    CHECK(d.reason.find("not offered on the dashboard") != std::string::npos);
  }
  CHECK(route(Request("DELETE", "/v1/services/web", kBearer)).route == WebRoute::kForbidden);
  // Read-only: reading only.
  CHECK(route(Request("GET", "/v1/status", kBearer), true).route == WebRoute::kApi);
  auto d = route(Request("POST", "/v1/services/web/upgrade", kBearer), true);
  CHECK(d.route == WebRoute::kForbidden);
  CHECK(d.reason == "the dashboard is read-only (daemon.web.read_only)");
}

TEST_CASE("a status follower: one at once, one after a burst of events, one every interval") {
  testing::FakeClock clock;
  int sent = 0;
  StatusFeed feed(clock, 2s, [&] { ++sent; });
  feed.Start();
  CHECK(sent == 0);  // from the loop, after the caller has answered
  clock.RunDue();
  CHECK(sent == 1);
  clock.Advance(1s);
  feed.Changed();
  feed.Changed();
  feed.Changed();
  CHECK(sent == 1);
  clock.Advance(StatusFeed::kGather);
  CHECK(sent == 2);  // the burst, once
  clock.Advance(StatusFeed::kGather);
  CHECK(sent == 2);
  clock.Advance(2s);  // the interval counts from the last one sent
  CHECK(sent == 3);
  clock.Advance(2s);
  CHECK(sent == 4);
}

TEST_CASE("a status follower may end itself while it sends") {
  testing::FakeClock clock;
  int sent = 0;
  std::unique_ptr<StatusFeed> feed;
  feed = std::make_unique<StatusFeed>(clock, 2s, [&] {
    ++sent;
    feed.reset();
  });
  feed->Start();
  clock.RunDue();
  CHECK(sent == 1);
  CHECK_FALSE(feed);
  clock.Advance(10s);
  CHECK(sent == 1);
}
