// bench/spawn_floor: the floor under an upgrade's wall time. Starts COUNT copies of a
// command the way batond does (vfork and exec, one listening socket as LISTEN_FDS,
// NOTIFY_SOCKET), waits for every READY=1, stops them, ROUNDS times, and prints the time
// from the first spawn to the last READY=1 as JSON. Nothing is supervised, logged or
// recorded: no supervisor can start the same processes faster on the same machine.
//
//   spawn_floor --count N --rounds R -- COMMAND [ARGS...]
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// "LISTEN_PID=<pid>" written by the child itself: it learns its pid only once it runs.
void WritePid(char* out, pid_t pid) {
  char digits[16];
  int n = 0;
  do digits[n++] = static_cast<char>('0' + pid % 10);
  while ((pid /= 10) > 0);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

// The copy's output goes to `devnull`: nobody reads it, and a full pipe would stop it.
pid_t Spawn(std::vector<char*>& argv, std::vector<char*>& env, char* pid_digits, int listener, int devnull) {
  pid_t pid = ::vfork();
  if (pid == 0) {
    WritePid(pid_digits, ::getpid());
    if (::dup2(listener, 3) < 0 || ::dup2(devnull, 1) < 0 || ::dup2(devnull, 2) < 0) ::_exit(127);
    ::execve(argv[0], argv.data(), env.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  int count = 0, rounds = 0, i = 1;
  for (; i + 1 < argc && std::strcmp(argv[i], "--") != 0; i += 2) {
    if (std::strcmp(argv[i], "--count") == 0) count = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
  }
  if (count < 1 || count > 4096 || rounds < 1 || rounds > 100000 || i + 1 >= argc || std::strcmp(argv[i], "--")) {
    std::fprintf(stderr, "usage: spawn_floor --count N --rounds R -- COMMAND [ARGS...]\n");
    return 2;
  }
  std::vector<char*> command(argv + i + 1, argv + argc);
  command.push_back(nullptr);

  char dir[] = "/tmp/spawn-floor-XXXXXX";
  if (!::mkdtemp(dir)) return std::perror("mkdtemp"), 1;
  std::string notify_path = std::string(dir) + "/notify.sock";
  int notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un na{};
  na.sun_family = AF_UNIX;
  std::strncpy(na.sun_path, notify_path.c_str(), sizeof na.sun_path - 1);
  timeval limit{10, 0};  // a worker that never gets ready ends the run, not hangs it
  ::setsockopt(notify, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in la{};
  la.sin_family = AF_INET;
  la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(notify, reinterpret_cast<sockaddr*>(&na), sizeof na) != 0 ||
      ::bind(listener, reinterpret_cast<sockaddr*>(&la), sizeof la) != 0 || ::listen(listener, 128) != 0)
    return std::perror("spawn_floor: sockets"), 1;

  int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (devnull < 0) return std::perror("spawn_floor: /dev/null"), 1;
  std::string notify_env = "NOTIFY_SOCKET=" + notify_path;
  std::vector<std::string> pid_envs(count, "LISTEN_PID=" + std::string(16, '\0'));
  std::vector<double> took;
  int failed = 0;
  for (int r = 0; r < rounds && !failed; ++r) {
    std::vector<pid_t> pids;
    Clock::time_point start = Clock::now();
    for (int k = 0; k < count; ++k) {
      std::vector<char*> env = {pid_envs[k].data(), const_cast<char*>("LISTEN_FDS=1"), notify_env.data(), nullptr};
      pid_t pid = Spawn(command, env, pid_envs[k].data() + std::strlen("LISTEN_PID="), listener, devnull);
      if (pid > 0) pids.push_back(pid);
    }
    failed = pids.size() < static_cast<size_t>(count);
    char buf[512];
    for (size_t ready = 0; !failed && ready < pids.size();) {
      ssize_t n = ::recv(notify, buf, sizeof buf - 1, 0);
      if (n < 0) {
        failed = 1;
        break;
      }
      buf[n] = '\0';
      if (std::strstr(buf, "READY=1")) ++ready;
    }
    took.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    for (pid_t pid : pids) ::kill(pid, SIGTERM);
    for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
  }
  ::unlink(notify_path.c_str());
  ::rmdir(dir);
  if (failed) {
    std::fprintf(stderr, "spawn_floor: a copy of %s did not start or send READY=1 within 10 s\n", command[0]);
    return 1;
  }
  std::sort(took.begin(), took.end());
  auto at = [&](double p) { return took[std::min(took.size() - 1, static_cast<size_t>(took.size() * p / 100))]; };
  std::printf("{\"count\": %d, \"rounds\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n", count, rounds, at(50), at(99));
  return 0;
}
