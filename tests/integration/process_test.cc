// What a worker sees: exactly its fds, the socket conventions, its own process group;
// and what batond does with bad input.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

int ProcessGroup(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  char state;
  int ppid, pgrp;
  rest >> state >> ppid >> pgrp;
  return pgrp;
}

// Connects to a Unix stream socket, sends `request`, returns the first reply bytes ("" on error).
std::string UnixExchange(const std::string& path, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  char buf[512] = {};
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()))
    (void)!::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  return buf;
}

std::string Ipv6Get(int port) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(static_cast<uint16_t>(port));
  addr.sin6_addr = in6addr_loopback;
  char buf[512] = {};
  std::string req = "GET / HTTP/1.1\r\n\r\n";
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()))
    (void)!::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  return buf;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

TEST_CASE("a worker has open exactly fds 0, 1, 2 and its listeners, with every convention set") {
  Daemon d(R"(
[service.web]
command = ["@WORKER@", "--version", "{version}", "--notify"]
replicas = 2
[service.web.listen]
http = "tcp://127.0.0.1:0"
admin = "unix://@DIR@/admin.sock"
v6 = "tcp6://[::1]:0"
dns = "udp://127.0.0.1:0"
[service.web.ready]
notify = true
)");
  d.Start();
  int port = d.Port("web");
  CHECK(Trim(HttpGet(port, "/fds")) == "0 1 2 3 4 5 6");
  CHECK(Trim(HttpGet(port, "/env/LISTEN_FDS")) == "4");
  CHECK(Trim(HttpGet(port, "/env/LISTEN_FDNAMES")) == "http:admin:v6:dns");
  CHECK(Trim(HttpGet(port, "/env/EINHORN_FD_COUNT")) == "4");
  CHECK(Trim(HttpGet(port, "/env/EINHORN_FD_1")) == "4");
  CHECK(Trim(HttpGet(port, "/env/NGINX")) == "3;4;5;6;");
  // LISTEN_PID is the pid of the very worker that answers.
  for (int i = 0; i < 4; ++i) {
    std::string who = Trim(HttpGet(port, "/whoami"));
    std::string pid = who.substr(4, who.find(' ') - 4);
    CHECK(who == "pid=" + pid + " LISTEN_PID=" + pid);
  }
  // From /proc, independently of the worker's own view.
  for (int pid : d.WorkerPids("web")) {
    std::vector<std::string> fds;
    for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
      fds.push_back(e.path().filename());
    std::sort(fds.begin(), fds.end());
    CHECK(fds == std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6"});
    CHECK(ProcessGroup(pid) == pid);
  }
  // The TCP6 and unix listeners work too.
  CHECK_THAT(Trim(Ipv6Get(d.Port("web", "v6"))), Catch::Contains("version=initial"));
  CHECK_THAT(UnixExchange(d.dir() + "/admin.sock", "GET / HTTP/1.1\r\n\r\n"), Catch::Contains("version=initial"));
}

TEST_CASE("worker output lands in batond's log tagged with service, version and pid") {
  Daemon d(R"(
[service.web]
command = ["@WORKER@", "--version", "{version}"]
version = "v7"
[service.web.listen]
http = "tcp://127.0.0.1:0"
)");
  d.Start();
  int pid = d.WorkerPids("web")[0];
  CHECK(WaitFor([&] {
    return d.Log().find("web v7 pid=" + std::to_string(pid) + " err: test_worker v7 serving") != std::string::npos;
  }));
}

TEST_CASE("a bad config is refused with file, line and key, and exit code 100") {
  TempDir dir;
  std::string path = dir.path + "/baton.toml";
  SECTION("unknown key") {
    std::ofstream(path) << "[service.web]\ncommand = [\"/bin/true\"]\nreplicaz = 2\n";
    auto r = RunCommand({BATOND_PATH, "-c", path});
    CHECK(r.exit_code == 100);
    CHECK_THAT(r.output, Catch::Contains(path + ":3:1: service.web.replicaz: unknown key"));
  }
  SECTION("port in use") {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    std::ofstream(path) << "[daemon]\ncontrol_socket = \"" << dir.path << "/ctl.sock\"\nstate_dir = \"" << dir.path
                        << "/state\"\n[service.web]\ncommand = [\"/bin/true\"]\n[service.web.listen]\n"
                        << "http = \"tcp://127.0.0.1:" << ntohs(a.sin_port) << "\"\n";
    auto r = RunCommand({BATOND_PATH, "-c", path});
    ::close(fd);
    CHECK(r.exit_code == 100);
    CHECK_THAT(r.output,
               Catch::Contains(path + ":7: service.web.listen.http") && Catch::Contains("Address already in use"));
    CHECK_FALSE(std::filesystem::exists(dir.path + "/ctl.sock"));
  }
  SECTION("missing file") {
    auto r = RunCommand({BATOND_PATH, "-c", dir.path + "/nope.toml"});
    CHECK(r.exit_code == 100);
  }
  SECTION("usage") {
    auto r = RunCommand({BATOND_PATH});
    CHECK(r.exit_code == 100);
  }
}

TEST_CASE("malformed API requests get JSON errors and the daemon keeps running") {
  Daemon d(R"(
[service.web]
command = ["@WORKER@", "--version", "{version}"]
[service.web.listen]
http = "tcp://127.0.0.1:0"
)");
  d.Start();
  auto bad_json = d.Api("POST", "/v1/services/web/upgrade", "{\"version\": ");
  CHECK(bad_json.status == 400);
  CHECK(bad_json.body["error"]["code"] == "bad_json");
  CHECK(d.Api("POST", "/v1/services/web/upgrade", "{\"version\": 5}").status == 400);
  CHECK(d.Api("POST", "/v1/services/nope/upgrade", "{\"version\": \"v2\"}").status == 404);
  CHECK(d.Api("GET", "/v1/nothing").status == 404);
  CHECK(d.Api("PUT", "/v1/status").status == 405);
  auto big = d.Api("POST", "/v1/services/web/upgrade", std::string(2 << 20, 'x'));
  CHECK((big.status == 413 || !big.error.empty()));
  // Garbage that is not HTTP at all.
  CHECK_THAT(UnixExchange(d.socket(), "\x01\x02 NOT HTTP\r\n\r\n"), Catch::StartsWith("HTTP/1.1 400"));
  CHECK(d.Api("GET", "/v1/status").status == 200);
  // The control socket is private to its owner.
  struct stat st;
  REQUIRE(::stat(d.socket().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("batonctl reports an unreachable daemon clearly") {
  auto r = RunCommand({BATONCTL_PATH, "-s", "/tmp/no-such-baton.sock", "status"});
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.output, Catch::Contains("cannot connect to /tmp/no-such-baton.sock"));
}
