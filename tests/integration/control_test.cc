// The control plane over the real socket: every route, the event stream, reload, peer
// checks and many clients at once.
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

const char* kService = R"(
[service.web]
command = ["@WORKER@", "--version", "{version}", "--notify"]
version = "v1"
replicas = 2
bake_time = "0s"
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.ready]
notify = true
timeout = "5s"
)";

int ConnectUnix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Runs batonctl as uid/gid 65534 (nobody/nogroup).
// Runs batonctl as uid 65534 from a copy beside the socket: the build tree may sit in a
// directory only root can enter (a checkout under mktemp -d is mode 0700).
CommandResult CtlAsNobody(const std::string& socket, const std::vector<std::string>& args) {
  std::string copy = socket.substr(0, socket.rfind('/')) + "/batonctl";
  std::filesystem::copy_file(BATONCTL_PATH, copy, std::filesystem::copy_options::overwrite_existing);
  ::chmod(copy.c_str(), 0755);
  std::vector<std::string> all = {copy, "-s", socket};
  all.insert(all.end(), args.begin(), args.end());
  return RunCommand(all, 65534);
}

}  // namespace

TEST_CASE("the event stream sees a whole handover, in order") {
  Daemon d(kService);
  d.Start();
  LineStream events(d.socket(), "GET", "/v1/events");
  REQUIRE(events.status() == 200);
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  std::vector<std::string> seen;
  for (nlohmann::json e; !(e = events.Next(5s)).is_null();) {
    seen.push_back(e["type"].get<std::string>() + ":" + std::to_string(e.value("generation", 0)));
    if (e["type"] == "generation_exited") break;
  }
  INFO(nlohmann::json(seen).dump());
  auto at = [&](const std::string& what) { return std::find(seen.begin(), seen.end(), what) - seen.begin(); };
  REQUIRE(at("generation_exited:1") < static_cast<long>(seen.size()));
  CHECK(at("handover_started:2") < at("spawned:2"));
  CHECK(at("spawned:2") < at("ready:2"));
  CHECK(at("ready:2") < at("draining:1"));
  CHECK(at("draining:1") < at("promoted:2"));
  CHECK(at("promoted:2") < at("exited:1"));
  CHECK(at("exited:1") < at("drained:1"));
}

TEST_CASE("restart, stop, start, scale and signal over the socket") {
  Daemon d(kService);
  d.Start();
  auto before = d.WorkerPids("web");

  auto restart = d.Ctl({"restart", "web"});
  INFO(restart.output);
  REQUIRE(restart.exit_code == 0);
  CHECK_THAT(restart.output, Catch::Contains("drained in"));
  auto after = d.WorkerPids("web");
  CHECK(after.size() == 2);
  for (int pid : after) CHECK(std::find(before.begin(), before.end(), pid) == before.end());
  CHECK(d.Service("web")["version"] == "v1");

  REQUIRE(d.Ctl({"scale", "web", "3"}).exit_code == 0);
  CHECK(WaitFor([&] { return d.WorkerPids("web").size() == 3; }));
  auto sig = d.Api("POST", "/v1/services/web/signal", R"({"signal": "TERM"})");
  CHECK(sig.status == 200);
  CHECK(sig.body["workers"] == 3);
  CHECK(d.Api("POST", "/v1/services/web/signal", R"({"signal": "NOPE"})").status == 400);
  // Workers that exit on a signal are restarted.
  CHECK(WaitFor([&] { return d.Service("web")["counters"]["restarts"].get<int>() >= 3; }));

  auto stop = d.Ctl({"stop", "web"});
  INFO(stop.output);
  REQUIRE(stop.exit_code == 0);
  CHECK(d.Service("web")["state"] == "stopped");
  CHECK(d.WorkerPids("web").empty());
  // Nothing accepts while stopped, but batond still holds the socket: a request waits in
  // the accept queue and is answered once the service starts again.
  std::string queued;
  std::thread waiter([&] { queued = HttpGet(d.Port("web")); });
  auto start = d.Ctl({"start", "web"});
  waiter.join();
  INFO(start.output);
  REQUIRE(start.exit_code == 0);
  CHECK_THAT(queued, Catch::Contains("version=v1"));
  CHECK(d.Service("web")["state"] == "running");
  CHECK_THAT(HttpGet(d.Port("web")), Catch::Contains("version=v1"));
  CHECK(d.Ctl({"start", "web"}).exit_code == 5);  // already running
  CHECK(d.Ctl({"scale", "nope", "2"}).exit_code == 4);
}

TEST_CASE("logs: the last lines, and following new ones") {
  Daemon d(kService);
  d.Start();
  auto logs = d.Api("GET", "/v1/services/web/logs?lines=10");
  REQUIRE(logs.status == 200);
  REQUIRE(logs.body["lines"].size() >= 2);
  CHECK_THAT(logs.body["lines"][0]["line"].get<std::string>(), Catch::Contains("test_worker v1 serving"));
  CHECK(logs.body["lines"][0]["stream"] == "stderr");
  CHECK(d.Api("GET", "/v1/services/web/logs?lines=1").body["lines"].size() == 1);
  auto text = d.Ctl({"logs", "web", "-n", "5"});
  CHECK_THAT(text.output, Catch::Contains("test_worker v1 serving"));

  LineStream follow(d.socket(), "GET", "/v1/services/web/logs?lines=0&follow=1");
  REQUIRE(follow.status() == 200);
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  bool saw_new = false;
  for (nlohmann::json l; !saw_new && !(l = follow.Next(5s)).is_null();)
    saw_new = l["line"].get<std::string>().find("test_worker v2 serving") != std::string::npos;
  CHECK(saw_new);
}

TEST_CASE("history, status and metrics over the socket") {
  Daemon d(kService);
  d.Start();
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  auto h = d.Ctl({"history", "web"});
  CHECK_THAT(h.output, Catch::Contains("upgrade") && Catch::Contains("promoted"));
  auto json = d.Ctl({"--json", "status"});
  auto parsed = nlohmann::json::parse(json.output);
  CHECK(parsed["services"][0]["version"] == "v2");
  auto list = d.Api("GET", "/v1/services");
  CHECK(list.body["services"].size() == 1);
  auto m = d.Ctl({"metrics"});
  CHECK_THAT(m.output, Catch::Contains("baton_service_handovers_total{outcome=\"promoted\",service=\"web\"} 2"));
  CHECK_THAT(m.output, Catch::Contains("baton_service_workers{service=\"web\",state=\"ready\"} 2"));
  CHECK_THAT(m.output, Catch::Contains("baton_daemon_open_fds "));
  // --version: the client's, and the daemon's when the socket answers.
  auto v = d.Ctl({"--version"});
  CHECK(v.exit_code == 0);
  CHECK_THAT(v.output, Catch::Contains("batonctl 0.") && Catch::Contains("batond 0.") &&
                           Catch::Contains("pid " + std::to_string(d.pid())));
  auto away = RunCommand({BATONCTL_PATH, "-s", d.dir() + "/nothing.sock", "--version"});
  CHECK(away.exit_code == 0);
  CHECK_THAT(away.output, Catch::Contains("batonctl 0.") && Catch::Contains("batond: no answer"));
}

TEST_CASE("reload applies added, removed and changed services, a bad config changes nothing") {
  Daemon d(kService);
  d.Start();
  int port = d.Port("web");
  auto old_pids = d.WorkerPids("web");
  Load load(port, 2);
  REQUIRE(load.WaitForVersion("v1"));

  // Add a service, change web's env (a new generation) and replicas.
  d.WriteConfig(std::string(kService) + R"(
[service.extra]
command = ["@WORKER@", "--version", "{version}"]
version = "e1"
[service.extra.listen]
http = "tcp://127.0.0.1:0"
)");
  {
    std::string text = std::string(kService);
    text.replace(text.find("replicas = 2"), 12, "replicas = 3\nenv = { MODE = \"b\" }");
    d.WriteConfig(text + R"(
[service.extra]
command = ["@WORKER@", "--version", "{version}"]
version = "e1"
[service.extra.listen]
http = "tcp://127.0.0.1:0"
)");
  }
  auto r = d.Api("POST", "/v1/reload");
  INFO(r.raw);
  REQUIRE(r.status == 200);
  CHECK(r.body["added"] == nlohmann::json{"extra"});
  CHECK(r.body["restarting"] == nlohmann::json{"web"});
  CHECK(WaitFor([&] { return d.Service("extra")["state"] == "running"; }));
  CHECK_THAT(HttpGet(d.Port("extra")), Catch::Contains("version=e1"));
  CHECK(WaitFor([&] { return d.WorkerPids("web").size() == 3; }));
  CHECK(d.Port("web") == port);  // the same socket, never re-bound
  CHECK(WaitFor([&] { return HttpGet(port, "/env/MODE").find("b") == 0; }));

  // A bad config is rejected whole, naming the file, line and key.
  d.WriteConfig(std::string(kService) + "\n[service.broken]\ncommand = [\"x\"]\nreplicas = \"many\"\n");
  auto bad = d.Api("POST", "/v1/reload");
  CHECK(bad.status == 400);
  CHECK_THAT(bad.body["error"]["message"].get<std::string>(), Catch::Contains("baton.toml:") &&
                                                                  Catch::Contains("service.broken.replicas") &&
                                                                  Catch::Contains("running one is kept"));
  CHECK(d.Service("extra")["state"] == "running");

  // SIGHUP reloads too: back to the first file removes `extra`.
  int extra_pid = d.WorkerPids("extra")[0];
  d.WriteConfig(kService);
  ::kill(d.pid(), SIGHUP);
  CHECK(WaitFor([&] { return d.Api("GET", "/v1/services/extra").status == 404; }));
  CHECK(WaitFor([&] { return !ProcessAlive(extra_pid); }));
  CHECK(WaitFor([&] { return d.WorkerPids("web").size() == 2; }));
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
}

TEST_CASE("peers are checked: a uid that is not allowed gets 403, an allowed gid gets through") {
  // The socket is group-accessible (0660, group nogroup) so that uid 65534 can connect at
  // all; then SO_PEERCRED decides.
  SECTION("refused") {
    Daemon d(kService, "socket_group = \"65534\"\n");
    ::chmod(d.dir().c_str(), 0755);
    d.Start();
    struct stat st;
    REQUIRE(::stat(d.socket().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0660);
    CHECK(st.st_gid == 65534);
    auto r = CtlAsNobody(d.socket(), {"status"});
    INFO(r.output);
    CHECK(r.exit_code == 5);
    CHECK_THAT(r.output, Catch::Contains("may not use the control socket"));
    CHECK(WaitFor([&] { return d.Log().find("refused a connection from uid 65534") != std::string::npos; }));
    CHECK(d.Api("GET", "/v1/status").body["daemon"]["control_refused"] == 1);
  }
  SECTION("allowed by gid") {
    Daemon d(kService, "socket_group = \"65534\"\nallow_gids = [65534]\n");
    ::chmod(d.dir().c_str(), 0755);
    d.Start();
    auto r = CtlAsNobody(d.socket(), {"status"});
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains("web"));
  }
}

TEST_CASE("1000 idle clients neither stall the daemon nor other clients, and time out") {
  rlimit lim{4096, 4096};
  ::setrlimit(RLIMIT_NOFILE, &lim);
  Daemon d(kService, "control_timeout = \"2s\"\n");
  d.Start();
  std::vector<int> idle;
  for (int i = 0; i < 1000; ++i) {
    int fd = ConnectUnix(d.socket());
    if (fd >= 0) idle.push_back(fd);
  }
  CHECK(idle.size() == 1000);
  // One of them sends half a request, slowly.
  CHECK(::write(idle[0], "GET /v1/sta", 11) == 11);
  auto t0 = std::chrono::steady_clock::now();
  auto r = d.Api("GET", "/v1/status");
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(r.status == 200);
  CHECK(took < 1s);
  CHECK(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  // After control_timeout every idle connection has been closed by batond.
  CHECK(WaitFor(
      [&] {
        char c;
        for (int fd : idle) {
          ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
          if (n < 0 && errno == EAGAIN) return false;
        }
        return true;
      },
      15s));
  for (int fd : idle) ::close(fd);
  CHECK(d.Api("GET", "/v1/status").status == 200);
}

TEST_CASE("reload with a changed listener set keeps the unchanged socket and adds the new one") {
  Daemon d(kService);
  d.Start();
  int port = d.Port("web");
  Load load(port, 2);
  REQUIRE(load.WaitForVersion("v1"));
  std::string text = kService;
  const std::string http = "http = \"tcp://127.0.0.1:0\"";
  text.replace(text.find(http), http.size(), http + "\nadmin = \"tcp://127.0.0.1:0\"");
  d.WriteConfig(text);
  auto r = d.Api("POST", "/v1/reload");
  INFO(r.raw);
  REQUIRE(r.status == 200);
  CHECK(r.body["changed"][0]["keys"] == nlohmann::json{"listen"});
  CHECK(r.body["restarting"] == nlohmann::json{"web"});
  CHECK(WaitFor([&] { return HttpGet(port, "/env/LISTEN_FDNAMES").find("http:admin") == 0; }));
  CHECK(d.Port("web") == port);
  CHECK_THAT(HttpGet(d.Port("web", "admin")), Catch::Contains("version=v1"));
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
}

TEST_CASE("stream clients that leave mid-stream, during handovers, do not hurt the daemon") {
  std::string config = kService;
  config.replace(config.find("replicas = 2"), 12, "replicas = 16");
  Daemon d(config);
  d.Start();
  for (int i = 0; i < 10; ++i) {
    std::vector<std::unique_ptr<LineStream>> streams;
    for (int k = 0; k < 4; ++k) streams.push_back(std::make_unique<LineStream>(d.socket(), "GET", "/v1/events"));
    auto r = d.Api("POST", "/v1/services/web/upgrade", "{\"version\": \"v" + std::to_string(i + 2) + "\"}");
    REQUIRE(r.status == 200);
    streams.clear();  // gone while batond is still writing the drain's events to them
  }
  CHECK(d.Api("GET", "/v1/status").status == 200);
}

TEST_CASE("batonctl events prints each event as it comes, not once a buffer fills") {
  Daemon d(kService);
  d.Start();
  const std::string out = d.dir() + "/events.out";
  int pid = Spawn(out, {BATONCTL_PATH, "-s", d.socket(), "events"});
  struct Reap {
    int pid;
    ~Reap() {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{pid};
  auto printed = [&] {
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  // Once batonctl is connected, one restart: a few hundred bytes of events, far from a buffer.
  REQUIRE(WaitFor([&] { return d.Api("GET", "/v1/status").body["daemon"]["streams"].get<int>() >= 1; }));
  REQUIRE(d.Ctl({"restart", "web"}).exit_code == 0);
  CHECK(WaitFor([&] { return printed().find("promoted") != std::string::npos; }));
  CHECK(ProcessAlive(pid));
  INFO(printed());
}
