// A small HTTP server that behaves the way the tests ask, to stand in for a real server
// under batond. It takes its listener from LISTEN_FDS (fd 3) and answers every request
// with "version=V pid=P". GET /fds lists its open fds; GET /env/NAME echoes a variable; GET /whoami
// tells its pid and LISTEN_PID.
//
//   --version V        reported in every response
//   --notify           send READY=1 to NOTIFY_SOCKET once serving
//   --ready-delay MS   wait this long before serving (and notifying)
//   --exit-at-start N  print to stderr and exit with status N at once
//   --crash-after MS   exit with status 3 after this long
//   --ignore-term      ignore SIGTERM (to test SIGKILL escalation)
//   --probe-port P     also serve on 127.0.0.1:P (a private port for probes)
//   --handle-ms MS     take this long over each request
//   --watchdog         send WATCHDOG=1 three times per WATCHDOG_USEC
//   --hold-mib N       keep N MiB of touched memory (for max_memory)
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;
void OnTerm(int) { g_stop = 1; }

void Notify(const std::string& msg) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path) return;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  ::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::close(fd);
}

// Open fds, leaving out the connection being served and the directory being read.
std::string OpenFds(int conn) {
  std::string out;
  DIR* d = ::opendir("/proc/self/fd");
  int self = ::dirfd(d);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.' || std::atoi(e->d_name) == self || std::atoi(e->d_name) == conn) continue;
    out += std::string(e->d_name) + " ";
  }
  ::closedir(d);
  return out;
}

void Serve(int conn, const std::string& version, int handle_ms) {
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
    ssize_t n = ::read(conn, buf, sizeof buf);
    if (n <= 0) break;
    req.append(buf, n);
  }
  if (handle_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(handle_ms));
  std::string path = req.substr(req.find(' ') + 1);
  path = path.substr(0, path.find(' '));
  std::string body;
  if (path == "/fds")
    body = OpenFds(conn);
  else if (path == "/whoami") {
    const char* lp = std::getenv("LISTEN_PID");
    body = "pid=" + std::to_string(::getpid()) + " LISTEN_PID=" + (lp ? lp : "(unset)");
  } else if (path.rfind("/env/", 0) == 0) {
    const char* v = std::getenv(path.substr(5).c_str());
    body = v ? v : "(unset)";
  } else
    body = "version=" + version + " pid=" + std::to_string(::getpid());
  body += "\n";
  std::string res =
      "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  (void)!::write(conn, res.data(), res.size());
  ::close(conn);
}

}  // namespace

int main(int argc, char** argv) {
  std::string version = "unknown";
  bool notify = false, ignore_term = false;
  int ready_delay = 0, exit_at_start = -1, crash_after = -1, probe_port = 0, handle_ms = 0, hold_mib = 0;
  bool watchdog = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--version")
      version = next();
    else if (a == "--notify")
      notify = true;
    else if (a == "--ready-delay")
      ready_delay = std::atoi(next().c_str());
    else if (a == "--exit-at-start")
      exit_at_start = std::atoi(next().c_str());
    else if (a == "--crash-after")
      crash_after = std::atoi(next().c_str());
    else if (a == "--ignore-term")
      ignore_term = true;
    else if (a == "--probe-port")
      probe_port = std::atoi(next().c_str());
    else if (a == "--handle-ms")
      handle_ms = std::atoi(next().c_str());
    else if (a == "--watchdog")
      watchdog = true;
    else if (a == "--hold-mib")
      hold_mib = std::atoi(next().c_str());
  }
  std::signal(SIGTERM, ignore_term ? SIG_IGN : OnTerm);
  std::signal(SIGPIPE, SIG_IGN);
  // SIGTERM is delivered only inside ppoll below, so a stop is never missed between the
  // check of g_stop and the wait, and an idle worker can wait without a timeout.
  sigset_t term, unblocked;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &unblocked);
  if (exit_at_start >= 0) {
    std::fprintf(stderr, "test_worker %s: refusing to start (asked to exit with %d)\n", version.c_str(), exit_at_start);
    return exit_at_start;
  }
  const char* lpid = std::getenv("LISTEN_PID");
  const char* lfds = std::getenv("LISTEN_FDS");
  if (!lfds || !lpid || std::atoi(lpid) != ::getpid()) {
    std::fprintf(stderr, "test_worker: LISTEN_FDS/LISTEN_PID missing or not for this pid\n");
    return 2;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(ready_delay));
  std::vector<char> held(static_cast<size_t>(hold_mib) << 20, 1);  // touched: resident
  const char* watchdog_usec = std::getenv("WATCHDOG_USEC");
  auto ping_every = std::chrono::microseconds(watchdog && watchdog_usec ? std::atoll(watchdog_usec) / 3 : 0);
  auto last_ping = std::chrono::steady_clock::now();
  std::vector<pollfd> fds;
  for (int i = 0; i < std::atoi(lfds); ++i) {
    ::fcntl(3 + i, F_SETFL, ::fcntl(3 + i, F_GETFL) | O_NONBLOCK);
    fds.push_back({3 + i, POLLIN, 0});
  }
  int probe = -1;
  if (probe_port > 0) {
    probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    ::setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(probe_port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(probe, 64) != 0) {
      std::perror("test_worker: probe port");
      return 4;
    }
    fds.push_back({probe, POLLIN, 0});
  }
  std::fprintf(stderr, "test_worker %s serving (pid %d)\n", version.c_str(), ::getpid());
  if (notify) Notify("READY=1\nSTATUS=serving " + version);
  auto started = std::chrono::steady_clock::now();
  while (!g_stop) {
    if (crash_after >= 0 && std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(crash_after)) {
      std::fprintf(stderr, "test_worker %s: crashing as asked\n", version.c_str());
      return 3;
    }
    if (ping_every.count() > 0 && std::chrono::steady_clock::now() - last_ping >= ping_every) {
      Notify("WATCHDOG=1");
      last_ping = std::chrono::steady_clock::now();
    }
    // Asleep until a connection, SIGTERM or the next thing due: 1,000 idle workers that
    // woke every 50 ms took more than one of the benchmark machine's two cores.
    auto due = std::chrono::steady_clock::time_point::max();
    if (crash_after >= 0) due = started + std::chrono::milliseconds(crash_after);
    if (ping_every.count() > 0) due = std::min<std::chrono::steady_clock::time_point>(due, last_ping + ping_every);
    timespec wait{}, *timeout = nullptr;
    if (due != std::chrono::steady_clock::time_point::max()) {
      auto left =
          std::max(std::chrono::nanoseconds(0),
                   std::chrono::duration_cast<std::chrono::nanoseconds>(due - std::chrono::steady_clock::now()));
      wait.tv_sec = static_cast<time_t>(left.count() / 1000000000);
      wait.tv_nsec = static_cast<long>(left.count() % 1000000000);
      timeout = &wait;
    }
    if (::ppoll(fds.data(), fds.size(), timeout, &unblocked) <= 0) continue;
    for (const auto& p : fds) {
      if (!(p.revents & POLLIN)) continue;
      int conn = ::accept4(p.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn >= 0) Serve(conn, version, handle_ms);
    }
  }
  std::fprintf(stderr, "test_worker %s: stopping on SIGTERM\n", version.c_str());
  return 0;
}
