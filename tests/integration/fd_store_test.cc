// batond under systemd with FileDescriptorStoreMax=: every listener it binds, and every
// generation's steered socket, sits in systemd's file descriptor store, so that a kill -9
// of batond refuses nothing and a restart takes the sockets back.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <mutex>
#include <thread>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

// systemd's side: a notify socket that keeps what comes with FDSTORE=1 under its FDNAME
// (the same socket twice is kept once), drops what FDSTOREREMOVE=1 names, and starts batond
// with what it keeps at fds 3, 4, ... (LISTEN_FDS, LISTEN_FDNAMES), as systemd restarts a
// service. A thread reads the socket as systemd would: its queue holds only 10 messages.
class FakeFdStore {
 public:
  explicit FakeFdStore(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    reader_ = std::thread([this] { Read(); });
  }
  ~FakeFdStore() {
    stop_ = true;
    reader_.join();
    for (auto& [name, fd] : kept_) ::close(fd);
    ::close(fd_);
  }
  std::vector<std::string> Names() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> names;
    for (const auto& [name, fd] : kept_) names.push_back(name);
    std::sort(names.begin(), names.end());
    return names;
  }
  bool Has(const std::string& name) {
    auto names = Names();
    return std::find(names.begin(), names.end(), name) != names.end();
  }
  // Starts batond with the store's sockets and a store of `size` ($FDSTORE); returns its pid.
  int StartBatond(const std::string& dir, int size = 64) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int> fds;
    std::string names;
    for (const auto& [name, fd] : kept_) {
      fds.push_back(fd);
      names += (names.empty() ? "" : ":") + name;
    }
    std::string env = "NOTIFY_SOCKET='" + path_ + "' FDSTORE=" + std::to_string(size) +
                      " LISTEN_PID=$$ LISTEN_FDS=" + std::to_string(fds.size()) + " LISTEN_FDNAMES='" + names + "'";
    // The shell knows its pid ($$) and keeps it through exec.
    return Spawn(dir + "/batond.log",
                 {"/bin/sh", "-c", env + " exec \"$0\" -c \"$1\"", BATOND_PATH, dir + "/baton.toml"}, [fds] {
                   // Out of the way first (above any fd 3+n), then into place; dup2 clears
                   // close-on-exec. No allocation here: the test's load threads may hold
                   // malloc's lock.
                   int high[64];
                   size_t n = std::min<size_t>(fds.size(), 64);
                   for (size_t i = 0; i < n; ++i) high[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 1000);
                   for (size_t i = 0; i < n; ++i) ::dup2(high[i], 3 + static_cast<int>(i));
                 });
  }

 private:
  void Read() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
      if (n <= 0) continue;
      std::vector<int> fds;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
          for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i)
            fds.push_back(reinterpret_cast<int*>(CMSG_DATA(c))[i]);
      Apply(std::string(buf, static_cast<size_t>(n)), fds);
    }
  }
  void Apply(const std::string& text, const std::vector<int>& fds) {
    auto field = [&](const std::string& key) {
      auto at = text.find(key + "=");
      if (at == std::string::npos || (at > 0 && text[at - 1] != '\n')) return std::string();
      at += key.size() + 1;
      return text.substr(at, text.find('\n', at) - at);
    };
    std::lock_guard<std::mutex> lock(mu_);
    if (field("FDSTOREREMOVE") == "1") {
      std::erase_if(kept_, [&](const auto& e) { return e.first == field("FDNAME") && ::close(e.second) == 0; });
      return;
    }
    for (int fd : fds) {
      bool stored = false;
      if (field("FDSTORE") == "1")
        stored = std::none_of(kept_.begin(), kept_.end(), [&](const auto& e) { return SameSocket(e.second, fd); });
      if (stored)
        kept_.emplace_back(field("FDNAME"), fd);
      else
        ::close(fd);
    }
  }
  static bool SameSocket(int a, int b) {
    struct stat sa {
    }, sb{};
    return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
  }

  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::pair<std::string, int>> kept_;  // in the order stored
  std::thread reader_;
};

// Kills batond (by pid) if the test ends before its orderly exit.
struct KillOnExit {
  const int& pid;
  ~KillOnExit() {
    if (pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

}  // namespace

TEST_CASE("kill -9 of batond under systemd's fd store and a restart: no connection refused or failed") {
  std::string steering = GENERATE(std::string("kernel"), std::string("shared"));
  INFO("steering: " << steering);
  std::string service = WebService(2);
  std::string listen = "http = \"tcp://127.0.0.1:0\"";
  service.replace(service.find(listen), listen.size(),
                  "http = { address = \"tcp://127.0.0.1:0\", steering = \"" + steering + "\" }");
  Daemon d(service);  // its directory and config; batond is started by the fake systemd
  FakeFdStore systemd(d.dir() + "/notify");
  auto running = [&] {
    auto r = d.Api("GET", "/v1/status");
    return r.status == 200 && r.body["services"][0]["state"] == "running";
  };
  int batond = systemd.StartBatond(d.dir());
  KillOnExit guard{batond};
  INFO(d.Log());
  REQUIRE(WaitFor(running));
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  int port = d.Port("web");
  nlohmann::json web = d.Service("web");
  if (steering == "kernel" && web["listeners"][0]["steering"]["program"] != "ebpf")
    SKIP_TEST(
        "the steering program is classic BPF here (eBPF needs CAP_BPF): connections waiting in a generation's "
        "socket would be reset at the restart, not moved (net.ipv4.tcp_migrate_req is 0)");
  int64_t v2 = web["last_handover"]["generation"].get<int64_t>();
  // The listener; with kernel steering also the socket of the live generation, v2's.
  std::string steered = "baton/web/http/" + std::to_string(v2);
  CHECK(WaitFor([&] { return systemd.Has("baton/web/http") && (steering == "shared" || systemd.Has(steered)); }));
  Load load(port, 4);
  REQUIRE(load.WaitForVersion("v2"));
  std::vector<int> workers = d.WorkerPids("web");
  ::kill(batond, SIGKILL);
  ::waitpid(batond, nullptr, 0);
  // Their stop signal, from the kernel; meanwhile clients wait in the sockets systemd holds.
  for (int pid : workers) CHECK(WaitFor([&] { return !ProcessAlive(pid); }));
  batond = systemd.StartBatond(d.dir());
  REQUIRE(WaitFor(running));
  REQUIRE(load.WaitForVersion("v2"));  // the last promoted release is resumed
  CHECK(d.Port("web") == port);
  // The socket of the generation before the crash left the group and the store.
  CHECK(WaitFor([&] { return !systemd.Has(steered) && systemd.Has("baton/web/http"); }));
  CHECK(d.Log().find("taking back tcp://127.0.0.1:" + std::to_string(port)) != std::string::npos);
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v3"}).exit_code == 0);  // and deploys go on
  REQUIRE(load.WaitForVersion("v3"));
  load.Stop();
  INFO(load.failures());
  CHECK(load.ok() > 0);
  CHECK(load.failed() == 0);
  ExpectOrderlyExit(batond, batond);
  // A clean stop closes the listeners, as without the store.
  CHECK(WaitFor([&] { return systemd.Names().empty(); }));
}
