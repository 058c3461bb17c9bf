// batond as a good parent: systemd Type=notify messages, orphans reaped as a subreaper and
// as PID 1 of a PID namespace, workers that do not outlive a killed batond.
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>
#include <fstream>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

// A datagram socket standing in for systemd's notify socket.
class FakeSystemd {
 public:
  explicit FakeSystemd(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{0, 200000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~FakeSystemd() { ::close(fd_); }
  // Waits for a message containing `text`; returns it, or "" after `limit`.
  std::string WaitFor(const std::string& text, std::chrono::milliseconds limit = 10s) {
    std::string found;
    baton::it::WaitFor(
        [&] {
          char buf[4096];
          for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, 0)) > 0;) {
            std::string msg(buf, static_cast<size_t>(n));
            if (msg.find(text) != std::string::npos) {
              found = msg;
              return true;
            }
          }
          return false;
        },
        limit);
    return found;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

std::vector<int> Children(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<int> out;
  for (int p; in >> p;) out.push_back(p);
  return out;
}

bool Zombie(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
}

// Workers whose start leaves an orphan behind: a background child of a shell that exits.
const std::string kOrphanMaker = R"(
[service.web]
command = ["/bin/sh", "-c", "(sleep 0.3 &); exec @WORKER@ --version {version} --notify"]
version = "v1"
bake_time = "0s"
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.ready]
notify = true
timeout = "5s"
)";

}  // namespace

TEST_CASE("systemd Type=notify: READY=1 with the versions, STATUS after upgrades, WATCHDOG=1, STOPPING=1") {
  TempDir dir;
  FakeSystemd systemd(dir.path + "/notify");
  Daemon d(WebService(2));
  ::setenv("NOTIFY_SOCKET", (dir.path + "/notify").c_str(), 1);
  ::setenv("WATCHDOG_USEC", "200000", 1);
  d.Start();
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  INFO(d.Log());
  CHECK_THAT(systemd.WaitFor("READY=1"), Catch::Contains("STATUS=web v1 (running)"));
  CHECK(!systemd.WaitFor("WATCHDOG=1", 2s).empty());
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  CHECK(!systemd.WaitFor("STATUS=web v2").empty());
  REQUIRE(d.Ctl({"reload"}).exit_code == 0);
  CHECK(!systemd.WaitFor("RELOADING=1").empty());
  CHECK(d.Stop() == 0);
  CHECK(!systemd.WaitFor("STOPPING=1").empty());
}

TEST_CASE("orphans reparented to batond are reaped: no zombie stays") {
  Daemon d(kOrphanMaker);
  d.Start();
  INFO(d.Log());
  CHECK(WaitFor([&] { return d.Api("GET", "/v1/status").body["daemon"]["orphans_reaped"] >= 1; }));
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  CHECK(WaitFor([&] { return d.Api("GET", "/v1/status").body["daemon"]["orphans_reaped"] >= 2; }));
  for (int child : Children(d.pid())) CHECK_FALSE(Zombie(child));
}

TEST_CASE("a kill -9 of batond leaves no worker serving unsupervised: they get their stop signal") {
  Daemon d(WebService(2));
  d.Start();
  std::vector<int> workers = d.WorkerPids("web");
  REQUIRE(workers.size() == 2);
  d.Kill();
  for (int pid : workers) CHECK(WaitFor([&] { return !ProcessAlive(pid); }, 10s));
}

TEST_CASE("as PID 1 of a new PID namespace: serves, reaps orphans, shuts down in order") {
  if (::geteuid() != 0) {
    SKIP_TEST("unshare --pid needs root");
  }
  Daemon d(kOrphanMaker);  // for its config file and directory; started here by unshare
  int unshare = Spawn(d.dir() + "/batond.log", {"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                                                BATOND_PATH, "-c", d.dir() + "/baton.toml"});
  INFO(d.Log());
  int batond = 0;  // its pid outside the namespace
  REQUIRE(WaitFor([&] {
    auto c = Children(unshare);
    batond = c.empty() ? 0 : c[0];
    return batond > 0 && d.Api("GET", "/v1/status").status == 200 &&
           d.Api("GET", "/v1/status").body["services"][0]["state"] == "running";
  }));
  CHECK(d.Api("GET", "/v1/status").body["daemon"]["pid"] == 1);
  CHECK(WaitFor([&] { return d.Api("GET", "/v1/status").body["daemon"]["orphans_reaped"] >= 1; }));
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  CHECK(WaitFor([&] { return d.Api("GET", "/v1/status").body["daemon"]["orphans_reaped"] >= 2; }));
  for (int child : Children(batond)) CHECK_FALSE(Zombie(child));
  ExpectOrderlyExit(batond, unshare);
  CHECK_THAT(d.Log(), Catch::Contains("batond stopped"));
}

TEST_CASE("systemd socket activation: a systemd:NAME listener is the socket systemd passed, by name") {
  int port = FreePort();
  std::string service = WebService(2);
  service.replace(service.find("tcp://127.0.0.1:0"), std::string("tcp://127.0.0.1:0").size(), "systemd:web");
  Daemon d(service);
  // It listens, and on the first connection execs batond (same pid) with the socket.
  int pid =
      Spawn(d.dir() + "/batond.log", {"/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:" + std::to_string(port),
                                      "--fdname=web", BATOND_PATH, "-c", d.dir() + "/baton.toml"});
  INFO(d.Log());
  std::string first;
  REQUIRE(WaitFor([&] { return (first = HttpGet(port)).find("version=v1") == 0; }, 20s));
  CHECK(d.Port("web") == port);
  // One worker answering is not the first start done: an upgrade before both workers are
  // ready is refused (a handover is in progress).
  REQUIRE(WaitFor([&] { return d.Service("web")["state"] == "running"; }, 20s));
  {
    Load load(port, 4);
    REQUIRE(load.WaitForVersion("v1"));
    auto upgrade = d.Ctl({"upgrade", "web", "--version", "v2"});
    INFO(upgrade.output);
    REQUIRE(upgrade.exit_code == 0);
    REQUIRE(load.WaitForVersion("v2"));
    load.Stop();
    INFO(load.failures());
    CHECK(load.failed() == 0);
  }
  ExpectOrderlyExit(pid, pid);
}

TEST_CASE(
    "FD store: a memfd left with FDSTORE=1 reaches the next generation, named in LISTEN_FDNAMES, across a "
    "self-upgrade") {
  std::string example = std::string(PROJECT_SOURCE_DIR) + "/examples/fdstore/counter.py";
  Daemon d(R"(
[service.counter]
command = ["/usr/bin/python3", ")" +
           example + R"(", "{version}"]
version = "v1"
bake_time = "0s"
[service.counter.listen]
http = "tcp://127.0.0.1:0"
[service.counter.ready]
notify = true
timeout = "10s"
)");
  d.Start();
  INFO(d.Log());
  int port = d.Port("counter");
  CHECK(HttpGet(port).find("version=v1 starts=1") == 0);
  for (int i = 2; i <= 4; ++i) {
    std::string v = "v" + std::to_string(i);
    if (i == 3) REQUIRE(d.Ctl({"self-upgrade"}).exit_code == 0);  // the store is carried over too
    REQUIRE(d.Ctl({"upgrade", "counter", "--version", v}).exit_code == 0);
    CHECK(HttpGet(port).find("version=" + v + " starts=" + std::to_string(i)) == 0);
  }
  // One entry: each start replaced the one before under the same name.
  CHECK(d.Service("counter")["fd_store"] == nlohmann::json::array({"counter"}));
}

// Holds a listening socket the way systemd does, and starts batond with it (LISTEN_FDS).
class SocketHolder {
 public:
  SocketHolder() : port_(FreePort()) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 4096) == 0);
  }
  ~SocketHolder() { ::close(fd_); }
  // Starts batond with the socket at fd 3 named "web"; returns its pid.
  int StartBatond(const std::string& dir) {
    // The shell knows its pid ($$) and keeps it through exec; the child of a test process
    // with load threads running must not allocate before exec.
    return Spawn(dir + "/batond.log",
                 {"/bin/sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec \"$0\" -c \"$1\"", BATOND_PATH,
                  dir + "/baton.toml"},
                 [this] {
                   if (fd_ == 3)
                     ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep close-on-exec
                   else
                     ::dup2(fd_, 3);  // dup2 clears close-on-exec
                 });
  }
  int port() const { return port_; }

 private:
  int port_;
  int fd_ = -1;
};

TEST_CASE("kill -9 of batond and a restart, with the socket held outside: no connection refused or failed") {
  std::string service = WebService(2);
  service.replace(service.find("tcp://127.0.0.1:0"), std::string("tcp://127.0.0.1:0").size(), "systemd:web");
  Daemon d(service);  // its directory and config; batond is started by the holder
  SocketHolder holder;
  auto running = [&] {
    auto r = d.Api("GET", "/v1/status");
    return r.status == 200 && r.body["services"][0]["state"] == "running";
  };
  int batond = holder.StartBatond(d.dir());
  INFO(d.Log());
  REQUIRE(WaitFor(running));
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  Load load(holder.port(), 4);
  REQUIRE(load.WaitForVersion("v2"));
  std::vector<int> workers = d.WorkerPids("web");
  ::kill(batond, SIGKILL);
  ::waitpid(batond, nullptr, 0);
  for (int pid : workers) CHECK(WaitFor([&] { return !ProcessAlive(pid); }));  // their stop signal, from the kernel
  batond = holder.StartBatond(d.dir());  // meanwhile connections wait in the held socket's queue
  REQUIRE(WaitFor(running));
  REQUIRE(load.WaitForVersion("v2"));  // the last promoted release is resumed
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  ExpectOrderlyExit(batond, batond);
}
