// Tunnels against a real OpenSSH server on loopback, started by each test with its own
// config, keys and port, and stopped by pid.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Whether the process has libssh mapped: batond loads it only for tunnels.
bool MapsLibssh(int pid) {
  return Slurp("/proc/" + std::to_string(pid) + "/maps").find("/libssh.so") != std::string::npos;
}

// A stock sshd as the edge: its own host key, a client key it accepts, remote forwarding
// allowed (or not).
class Edge {
 public:
  explicit Edge(bool permit_forwarding = true) : port_(FreePort()) {
    ::mkdir("/run/sshd", 0755);  // sshd's privilege separation directory
    for (const char* key : {"host_key", "client_key"})
      REQUIRE(
          RunCommand({"/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir_.path + "/" + key}).exit_code ==
          0);
    std::ofstream(dir_.path + "/authorized_keys") << Slurp(dir_.path + "/client_key.pub");
    ::chmod((dir_.path + "/authorized_keys").c_str(), 0600);
    std::string host_pub = Slurp(dir_.path + "/host_key.pub");
    std::ofstream(dir_.path + "/known_hosts")
        << "[127.0.0.1]:" << port_ << " " << host_pub.substr(0, host_pub.rfind(' ')) << "\n";
    std::ofstream(dir_.path + "/sshd_config")
        << "Port " << port_ << "\nListenAddress 127.0.0.1\nHostKey " << dir_.path << "/host_key\nPidFile " << dir_.path
        << "/sshd.pid\nAuthorizedKeysFile " << dir_.path
        << "/authorized_keys\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
        << "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAllowTcpForwarding "
        << (permit_forwarding ? "remote" : "no") << "\nPermitListen any\n";
    Start();
  }
  ~Edge() { Stop(); }

  void Start() {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int log = ::open((dir_.path + "/sshd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      ::dup2(log, 2);
      std::string config = dir_.path + "/sshd_config";
      ::execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", config.c_str(), nullptr);
      ::_exit(127);
    }
    REQUIRE(WaitFor([&] { return Slurp(dir_.path + "/sshd.log").find("Server listening") != std::string::npos; }));
  }
  // Kills the listener and every session process it started.
  void Stop() {
    if (pid_ <= 0) return;
    for (int child : Sessions()) ::kill(child, SIGKILL);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    ::unlink((dir_.path + "/sshd.log").c_str());
  }
  // The per-connection sshd processes (children of the listener).
  std::vector<int> Sessions() const {
    std::vector<int> pids;
    std::ifstream in("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children");
    int p;
    while (in >> p) pids.push_back(p);
    return pids;
  }
  // A [tunnel.NAME] section for batond.
  std::string Tunnel(const std::string& name, int remote_port, const std::string& to,
                     const std::string& extra = "") const {
    std::string user = ::getpwuid(::geteuid())->pw_name;
    return "\n[tunnel." + name + "]\nedges = [\"127.0.0.1:" + std::to_string(port_) + "\"]\nuser = \"" + user +
           "\"\nidentity = \"" + dir_.path + "/client_key\"\nknown_hosts = \"" + dir_.path +
           "/known_hosts\"\nremote_bind = \"127.0.0.1:" + std::to_string(remote_port) + "\"\nto = \"" + to +
           "\"\nkeepalive = \"300ms\"\nbackoff = \"100ms\"\nmax_backoff = \"1s\"\n" + extra;
  }
  int port() const { return port_; }
  const std::string& dir() const { return dir_.path; }

 private:
  TempDir dir_;
  int port_;
  int pid_ = -1;
};

nlohmann::json Session(Daemon& d, size_t i = 0) { return d.Api("GET", "/v1/status").body["tunnels"][0]["sessions"][i]; }

bool SessionUp(Daemon& d, size_t i = 0) { return Session(d, i)["state"] == "up"; }

// batond with test workers reached through one edge; set up and up.
struct Tunnelled {
  explicit Tunnelled(const std::string& extra = "")
      : remote(FreePort()), d(WebService(2) + edge.Tunnel("edge", remote, "web.http", extra)) {
    d.Start();
    REQUIRE(WaitFor([&] { return SessionUp(d); }));
    REQUIRE(HttpGet(remote).find("version=v1") == 0);
  }
  Edge edge;
  int remote;
  Daemon d;
};

}  // namespace

TEST_CASE("tunnel: 20 upgrades under load through the edge without a failed request or a reconnect") {
  Tunnelled t;
  auto& [edge, remote, d] = t;
  INFO(d.Log());
  Load load(remote, 4);
  REQUIRE(load.WaitForVersion("v1", 20s));
  for (int i = 0; i < 20; ++i) {
    std::string v = i % 2 == 0 ? "v2" : "v1";
    auto r = d.Ctl({"upgrade", "web", "--version", v});
    INFO("upgrade " << i << ": " << r.output);
    REQUIRE(r.exit_code == 0);
    REQUIRE(load.WaitForVersion(v, 20s));
  }
  // A release that never becomes ready (it would start serving only after 10 s): the
  // tunnelled connections queued meanwhile are served by the live generation.
  auto bad = d.Ctl({"upgrade", "web", "--version", "v3", "--", TEST_WORKER_PATH, "--version", "v3", "--notify",
                    "--ready-delay", "10000"});
  INFO(bad.output);
  CHECK(bad.exit_code == 1);
  REQUIRE(load.WaitForVersion("v1", 20s));
  load.Stop();
  auto report = load.Report();
  INFO(report.Summary());
  CHECK(report.failed == 0);
  CHECK(report.ok > 100);
  CHECK(report.versions.count("v3") == 0);
  // Workers started while the session was up hold nothing of it: fds 0, 1, 2 and the listener.
  CHECK(HttpGet(remote, "/fds") == "0 1 2 3 \n");
  auto s = Session(d);
  CHECK(s["connects"] == 1);  // one SSH session over the whole test
  CHECK(s["channels_total"].get<uint64_t>() >= report.ok);
  CHECK(MapsLibssh(d.pid()));
}

TEST_CASE("tunnel: a batond without tunnels does not load libssh") {
  Daemon d(WebService(1));
  d.Start();
  INFO(d.Log());
  REQUIRE(d.WorkerPids("web").size() == 1);
  CHECK_FALSE(MapsLibssh(d.pid()));
  CHECK(d.Stop() == 0);
}

TEST_CASE("tunnel: a payload larger than the channel window, and half-close both ways, into a proxied listener") {
  Edge edge;
  int remote = FreePort();
  std::string backend = std::string(PROJECT_SOURCE_DIR) + "/tests/helpers/proxy_backend.py";
  Daemon d(R"(
[service.echo]
command = ["/usr/bin/python3", ")" +
           backend + R"(", "{version}", "{port:tcp}"]
version = "v1"
bake_time = "0s"
[service.echo.listen]
tcp = { address = "tcp://127.0.0.1:0", mode = "proxy" }
[service.echo.ready]
timeout = "10s"
interval = "20ms"
)" + edge.Tunnel("edge", remote, "echo.tcp"));
  d.Start();
  INFO(d.Log());
  REQUIRE(WaitFor([&] { return SessionUp(d); }));
  // 8 MB each way: many times the SSH channel window.
  auto r = RunCommand({"/usr/bin/python3", "-c", R"(
import socket, sys, zlib
port, size = int(sys.argv[1]), 8 * 1000 * 1000
data = bytes(i * 7 % 251 for i in range(251 * 4096))
up = socket.create_connection(("127.0.0.1", port))
up.sendall(b"sink\n")
sent, crc = 0, 0
while sent < size:
    piece = data[:min(len(data), size - sent)]
    up.sendall(piece); sent += len(piece); crc = zlib.crc32(piece, crc)
up.shutdown(socket.SHUT_WR)
answer = up.makefile().readline().split()
assert answer == [str(size), str(crc)], answer
down = socket.create_connection(("127.0.0.1", port))
down.sendall(f"source {size}\n".encode())
got, crc2 = 0, 0
while chunk := down.recv(1 << 16):
    got += len(chunk); crc2 = zlib.crc32(chunk, crc2)
expected = 0
for i in range(0, size, len(data)):
    expected = zlib.crc32(data[:min(len(data), size - i)], expected)
assert got == size and crc2 == expected, (got, crc2, expected)
down.sendall(b"after eof\n")
down.close()
print("ok")
)",
                       std::to_string(remote)});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(WaitFor([&] { return d.Log().find("after half-close: after eof") != std::string::npos; }, 10s));
}

TEST_CASE("tunnel: an edge killed and restarted is reconnected with backoff, and traffic flows again") {
  Tunnelled t;
  auto& [edge, remote, d] = t;
  INFO(d.Log());
  edge.Stop();
  CHECK(WaitFor([&] { return !SessionUp(d); }, 10s));
  edge.Start();
  CHECK(WaitFor([&] { return SessionUp(d) && Session(d)["connects"] == 2; }, 15s));
  CHECK(Session(d)["reconnects"] == 1);
  CHECK(HttpGet(remote).find("version=v1") == 0);
}

TEST_CASE("tunnel: after a self-upgrade of batond the new program reconnects, and traffic flows again") {
  Tunnelled t;
  auto& [edge, remote, d] = t;
  INFO(d.Log());
  auto r = d.Ctl({"self-upgrade"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(WaitFor([&] { return SessionUp(d); }, 15s));
  CHECK(WaitFor([&] { return HttpGet(remote).find("version=v1") == 0; }, 5s));
  CHECK(WaitFor([&] { return edge.Sessions().size() == 1; }, 5s));  // the old session went with the old program
}

TEST_CASE("tunnel: two edges, one killed: traffic continues through the other") {
  // Both edges run on this host, so the second edge's forward of the same port is refused
  // while the first holds it, and retried; when the first dies, the second takes over.
  Edge first, second;
  int remote = FreePort();
  std::string tunnel = first.Tunnel("edge", remote, "web.http");
  std::string edges = "edges = [\"127.0.0.1:" + std::to_string(first.port()) +
                      "\", \"127.0.0.1:" + std::to_string(second.port()) + "\"]";
  tunnel.replace(tunnel.find("edges = "), tunnel.find('\n', tunnel.find("edges = ")) - tunnel.find("edges = "), edges);
  // One known_hosts for both edges.
  std::ofstream(first.dir() + "/known_hosts", std::ios::app) << Slurp(second.dir() + "/known_hosts");
  std::ofstream(second.dir() + "/authorized_keys", std::ios::trunc) << Slurp(first.dir() + "/client_key.pub");
  Daemon d(WebService(2) + tunnel);
  d.Start();
  INFO(d.Log());
  REQUIRE(WaitFor([&] { return SessionUp(d, 0); }));
  REQUIRE(HttpGet(remote).find("version=v1") == 0);
  CHECK(WaitFor([&] { return Session(d, 1).value("last_error", "").find("refused to forward") != std::string::npos; }));
  first.Stop();
  CHECK(WaitFor([&] { return SessionUp(d, 1); }, 15s));
  CHECK(HttpGet(remote).find("version=v1") == 0);
}

TEST_CASE("tunnel: a frozen edge (SIGSTOP) is detected by keepalives and replaced") {
  Tunnelled t;
  auto& [edge, remote, d] = t;
  INFO(d.Log());
  std::vector<int> sessions = edge.Sessions();
  REQUIRE(sessions.size() == 1);
  ::kill(sessions[0], SIGSTOP);  // the TCP connection stays open; nothing comes back
  CHECK(WaitFor([&] { return d.Log().find("(keepalive): the edge is dead") != std::string::npos; }, 10s));
  // The frozen process still holds the port on the edge: the new session's forward is
  // refused, and retried with backoff until the edge lets the port go.
  CHECK(WaitFor([&] { return Session(d).value("last_error", "").find("refused to forward") != std::string::npos; }));
  ::kill(sessions[0], SIGKILL);
  CHECK(WaitFor([&] { return Session(d)["connects"] == 2 && SessionUp(d); }, 15s));
  CHECK(HttpGet(remote).find("version=v1") == 0);
}

TEST_CASE("tunnel: bad input is a clear error in status and log, retried, never a crash") {
  SECTION("unknown host key") {
    Edge edge;
    std::ofstream(edge.dir() + "/known_hosts", std::ios::trunc) << "";
    Daemon d(WebService(2) + edge.Tunnel("edge", FreePort(), "web.http"));
    d.Start();
    INFO(d.Log());
    CHECK(WaitFor([&] { return Session(d).value("last_error", "").find("is not in") != std::string::npos; }));
    CHECK_THAT(d.Log(), Catch::Contains("refusing to connect"));
    CHECK(d.Api("GET", "/v1/status").status == 200);
  }
  SECTION("a key the edge does not accept") {
    Edge edge;
    std::ofstream(edge.dir() + "/authorized_keys", std::ios::trunc) << "";
    Daemon d(WebService(2) + edge.Tunnel("edge", FreePort(), "web.http"));
    d.Start();
    INFO(d.Log());
    CHECK(WaitFor([&] { return Session(d).value("last_error", "").find("refused the key") != std::string::npos; }));
  }
  SECTION("forwarding not permitted by the edge") {
    Edge edge(false);
    Daemon d(WebService(2) + edge.Tunnel("edge", FreePort(), "web.http"));
    d.Start();
    INFO(d.Log());
    CHECK(WaitFor([&] { return Session(d).value("last_error", "").find("refused to forward") != std::string::npos; }));
    CHECK(WaitFor([&] { return Session(d)["state"] != "up"; }));
  }
}

TEST_CASE("tunnel: batond's stop cancels the forward and closes the session cleanly") {
  Tunnelled t;
  auto& [edge, remote, d] = t;
  INFO(d.Log());
  CHECK(d.Stop() == 0);
  std::string error;
  CHECK(WaitFor([&] { return HttpGet(remote, "/", &error).empty() && error.find("refused") != std::string::npos; }));
  CHECK(WaitFor([&] { return edge.Sessions().empty(); }));  // the edge's session process is gone
}

TEST_CASE("tunnel: proxy_protocol tells the worker the address the edge saw") {
  Edge edge;
  int remote = FreePort();
  std::string backend = std::string(PROJECT_SOURCE_DIR) + "/tests/helpers/proxy_backend.py";
  Daemon d(R"(
[service.echo]
command = ["/usr/bin/python3", ")" +
           backend + R"(", "{version}", "{port:tcp}", "--proxy-protocol"]
version = "v1"
bake_time = "0s"
[service.echo.listen]
tcp = { address = "tcp://127.0.0.1:0", mode = "proxy" }
)" + edge.Tunnel("edge", remote, "echo.tcp", "proxy_protocol = true\n"));
  d.Start();
  INFO(d.Log());
  REQUIRE(WaitFor([&] { return SessionUp(d); }));
  auto r = RunCommand({"/usr/bin/python3", "-c", R"(
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"peer\n")
seen = s.makefile().readline().strip()
mine = "%s:%d" % s.getsockname()
assert seen == mine, (seen, mine)
print("ok", seen)
)",
                       std::to_string(remote)});
  INFO(r.output);
  CHECK(r.exit_code == 0);
}
