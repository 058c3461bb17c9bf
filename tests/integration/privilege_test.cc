// Least privilege: workers as another user with their groups, umask, resource limits and
// a clean environment; batond refusing a control socket or a config others could change.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

// What a worker reports about itself, then it tells batond it is ready and stays.
const char* kIdentityWorker =
    R"(echo uid=$(id -u) gid=$(id -g) groups=$(id -G | tr ' ' ,) umask=$(umask) nofile=$(ulimit -n) )"
    R"(nproc=$(ulimit -p) core=$(ulimit -c) >&2; env | sort | sed 's/^/env: /' >&2; )"
    R"(systemd-notify --ready; while :; do sleep 1; done)";

std::string Logs(Daemon& d, const std::string& service) {
  return d.Api("GET", "/v1/services/" + service + "/logs?lines=200").raw;
}

}  // namespace

TEST_CASE("a worker runs as its user and groups, with umask, limits and only the environment it is given") {
  if (::geteuid() != 0) {
    SKIP_TEST("switching users needs root");
  }
  ::setenv("TEST_PASSED_ON", "yes", 1);
  ::setenv("TEST_KEPT_OUT", "secret", 1);
  Daemon d(std::string(R"(
[service.least]
command = ["/bin/sh", "-c", ")") +
           kIdentityWorker + R"("]
version = "v1"
user = "nobody"
group = "nogroup"
supplementary_groups = ["daemon"]
umask = "0027"
pass_env = ["TEST_PASSED_ON"]
env = { FOO = "bar" }
[service.least.limits]
nofile = 256
nproc = 100
core = 0
[service.least.listen]
http = "tcp://127.0.0.1:0"
[service.least.ready]
notify = true
timeout = "10s"
)");
  REQUIRE(::chmod(d.dir().c_str(), 0711) == 0);  // the notify socket lies below it
  d.Start();                                     // READY=1 came from a process of another user
  ::unsetenv("TEST_PASSED_ON");
  ::unsetenv("TEST_KEPT_OUT");
  INFO(d.Log());
  std::string logs = Logs(d, "least");
  CHECK_THAT(logs, Catch::Contains("uid=65534 gid=65534 groups=65534,1 umask=0027 nofile=256 nproc=100 core=0"));
  for (const char* present : {"env: FOO=bar", "env: TEST_PASSED_ON=yes", "env: HOME=/nonexistent", "env: USER=nobody",
                              "env: LOGNAME=nobody", "env: PATH=", "env: LISTEN_FDS=1", "env: NOTIFY_SOCKET="})
    CHECK_THAT(logs, Catch::Contains(present));
  CHECK_THAT(logs, !Catch::Contains("TEST_KEPT_OUT"));
  // The worker's process really is nobody's, and batond's is not.
  std::vector<int> pids = d.WorkerPids("least");
  REQUIRE(pids.size() == 1);
  struct stat st;
  REQUIRE(::stat(("/proc/" + std::to_string(pids[0])).c_str(), &st) == 0);
  CHECK(st.st_uid == 65534);
  // The next generation is set up the same way.
  REQUIRE(d.Ctl({"upgrade", "least", "--version", "v2"}).exit_code == 0);
  std::vector<int> next = d.WorkerPids("least");
  REQUIRE(next.size() == 1);
  REQUIRE(::stat(("/proc/" + std::to_string(next[0])).c_str(), &st) == 0);
  CHECK(st.st_uid == 65534);
}

TEST_CASE("a service naming a user that does not exist is refused at once with the name") {
  if (::geteuid() != 0) {
    SKIP_TEST("switching users needs root");
  }
  Daemon d(WebService(1));
  d.Start();
  std::vector<int> pids = d.WorkerPids("web");
  d.WriteConfig(WebService(1, "user = \"no-such-user-here\"\n"));
  auto reload = d.Api("POST", "/v1/reload");
  INFO(reload.raw);
  REQUIRE(reload.status == 200);  // the file is valid; starting the new generation is refused
  CHECK(WaitFor([&] { return d.Log().find("no user named 'no-such-user-here'") != std::string::npos; }));
  CHECK(d.WorkerPids("web") == pids);
}

TEST_CASE("batond refuses a control socket in a directory others can write to, and a root config others can change") {
  TempDir dir;
  std::string path = dir.path + "/baton.toml";
  std::string shared = dir.path + "/shared";
  std::filesystem::create_directories(shared);
  REQUIRE(::chmod(shared.c_str(), 01777) == 0);
  std::ofstream(path) << "[daemon]\ncontrol_socket = \"" << shared << "/ctl.sock\"\nstate_dir = \"" << dir.path
                      << "/state\"\n[service.web]\ncommand = [\"/bin/true\"]\n";
  auto r = RunCommand({BATOND_PATH, "-c", path});
  CHECK(r.exit_code == 100);
  CHECK_THAT(r.output,
             Catch::Contains("daemon.control_socket: directory " + shared + " is writable by others (mode 1777)"));
  CHECK_FALSE(std::filesystem::exists(shared + "/ctl.sock"));
  if (::geteuid() == 0) {
    REQUIRE(::chmod(path.c_str(), 0666) == 0);
    r = RunCommand({BATOND_PATH, "-c", path});
    CHECK(r.exit_code == 100);
    CHECK_THAT(r.output, Catch::Contains(path + ": writable by others (mode 0666)"));
  }
}

TEST_CASE("a uid or gid that would wrap to root is refused: at start with its line, and by a reload") {
  // 2^32 read unchecked and cast to uid_t is 0: the worker once ran as root this way.
  TempDir dir;
  std::string path = dir.path + "/baton.toml";
  std::ofstream(path) << "[daemon]\ncontrol_socket = \"" << dir.path << "/ctl.sock\"\nstate_dir = \"" << dir.path
                      << "/state\"\n[service.web]\ncommand = [\"/usr/bin/id\"]\nuser = \"4294967296\"\n";
  auto r = RunCommand({BATOND_PATH, "-c", path});
  CHECK(r.exit_code == 100);
  CHECK_THAT(r.output,
             Catch::Contains(path + ":6:8: service.web.user: id: '4294967296' is out of range (0 to 4294967294)"));
  CHECK_FALSE(std::filesystem::exists(dir.path + "/ctl.sock"));

  Daemon d(WebService(1));
  d.Start();
  std::vector<int> pids = d.WorkerPids("web");
  for (const char* line :
       {"user = \"4294967296\"\n", "group = \"4294967296\"\n", "supplementary_groups = [\"18446744073709551616\"]\n"}) {
    d.WriteConfig(WebService(1, line));
    auto reload = d.Api("POST", "/v1/reload");
    INFO(reload.raw);
    CHECK(reload.status == 400);
    CHECK_THAT(reload.raw, Catch::Contains("is out of range (0 to 4294967294)"));
  }
  CHECK(d.WorkerPids("web") == pids);  // nothing was started, as anyone
}
