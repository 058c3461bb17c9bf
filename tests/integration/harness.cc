#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "supervisor/sockets/port_pool.h"

namespace baton::it {

namespace fs = std::filesystem;

TempDir::TempDir() {
  char tmpl[] = "/tmp/baton-it-XXXXXX";
  path = ::mkdtemp(tmpl);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

int Spawn(const std::string& log, const std::vector<std::string>& argv, const std::function<void()>& in_child) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    if (in_child) in_child();
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

void ExpectOrderlyExit(int signal_pid, int pid) {
  ::kill(signal_pid, SIGTERM);
  int status = 0;
  CHECK(WaitFor([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 20s));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);  // poll interval of a deadline wait
  }
  return condition();
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::optional<unsigned> as_uid,
                         std::chrono::milliseconds limit) {
  // Allocated before fork: the child of a threaded process may only make async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipefd[2];
  REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    if (as_uid && (::setgroups(0, nullptr) != 0 || ::setgid(*as_uid) != 0 || ::setuid(*as_uid) != 0)) ::_exit(99);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  CommandResult r;
  auto deadline = std::chrono::steady_clock::now() + limit;
  bool timed_out = false;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{pipefd[0], POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
      timed_out = true;
      break;
    }
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.output.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (timed_out) {
    r.exit_code = -1;
    r.output += "\n[still running after " + std::to_string(limit.count()) + " ms: killed]";
  }
  return r;
}

int FreePort() {
  // Below batond's default port_range and the kernel's ephemeral ports, so neither a
  // worker's {probe_port} nor the load's outgoing connections can take it before it is
  // bound. Each test process starts at its own place in the range.
  static PortPool pool(PortRange{10000, 19999}, static_cast<uint32_t>(::getpid()) * 2654435761u);
  auto port = pool.Next();
  REQUIRE(port.ok());
  return *port;
}

namespace {

// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot; "" when
// there is no such process.
std::string StartTime(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line) || line.rfind(')') == std::string::npos) return "";
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
  }
  return field;
}

}  // namespace

void Daemon::Saw(int pid) { seen_workers_.emplace_back(pid, StartTime(pid)); }

bool ProcessAlive(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  auto close = line.rfind(')');
  return close != std::string::npos && line[close + 2] != 'Z';
}

Daemon::Daemon(const std::string& services_config, const std::string& daemon_extra) : daemon_extra_(daemon_extra) {
  WriteConfig(services_config);
}

void Daemon::WriteConfig(const std::string& services_config) {
  std::string text =
      "[daemon]\ncontrol_socket = \"@DIR@/ctl.sock\"\nstate_dir = \"@DIR@/state\"\nlog_level = \"debug\"\n" +
      daemon_extra_ + "\n" + services_config;
  for (auto [from, to] : {std::pair<std::string, std::string>{"@DIR@", dir_.path}, {"@WORKER@", TEST_WORKER_PATH}}) {
    for (size_t pos; (pos = text.find(from)) != std::string::npos;) text.replace(pos, from.size(), to);
  }
  std::ofstream(dir_.path + "/baton.toml.new") << text;
  std::filesystem::rename(dir_.path + "/baton.toml.new", dir_.path + "/baton.toml");
}

LineStream::LineStream(const std::string& socket, const std::string& method, const std::string& target) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n\r\n";
  if (::write(fd_, req.data(), req.size()) != static_cast<ssize_t>(req.size())) return;
  // Read the header.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (buffer_.find("\r\n\r\n") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) break;
    buffer_.append(buf, n);
  }
  auto end = buffer_.find("\r\n\r\n");
  if (end == std::string::npos) return;
  if (buffer_.rfind("HTTP/1.1 ", 0) == 0) status_ = std::atoi(buffer_.c_str() + 9);
  buffer_.erase(0, end + 4);
}

LineStream::~LineStream() {
  if (fd_ >= 0) ::close(fd_);
}

nlohmann::json LineStream::Next(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      auto line = nlohmann::json::parse(buffer_.substr(0, nl), nullptr, false);
      buffer_.erase(0, nl + 1);
      return line.is_discarded() ? nlohmann::json() : line;
    }
    if (std::chrono::steady_clock::now() >= deadline) return nullptr;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) return nullptr;
    buffer_.append(buf, n);
  }
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    int code = Stop(15s);
    if (code < 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    // Every test ends with an orderly stop; under the sanitizers a report makes it fail.
    if (!std::uncaught_exceptions()) {
      INFO(Log());
      CHECK(code == 0);
    }
  }
  if (!std::uncaught_exceptions()) {
    std::string log = Log();
    INFO(log);
    CHECK(log.find("Sanitizer") == std::string::npos);
    CHECK(log.find("runtime error") == std::string::npos);
  }
  for (const auto& [pid, started] : seen_workers_)
    if (!started.empty() && StartTime(pid) == started && ProcessAlive(pid)) ::kill(-pid, SIGKILL);
}

void Daemon::Start() {
  // Everything the child needs is allocated before fork: load threads may hold malloc's lock.
  std::vector<std::string> args = wrapper_;
  args.push_back(binary_);
  args.push_back("-c");
  args.push_back(dir_.path + "/baton.toml");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string log_path = dir_.path + "/batond.log";
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a crashed test leaves no daemon behind
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(log, 2);
    ::dup2(log, 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  bool up = WaitFor([&] {
    auto r = Api("GET", "/v1/status");
    if (r.status != 200) return false;
    for (const auto& s : r.body["services"])
      if (s["state"] == "starting") return false;
    return true;
  });
  std::string log = Log();
  INFO(log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  REQUIRE(up);
}

void Daemon::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int Daemon::Stop(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return -1;
  nlohmann::json daemon_status = Api("GET", "/v1/status").body;
  for (const auto& s : daemon_status["services"])
    for (const auto& g : s["generations"])
      for (const auto& w : g["workers"])
        if (w["pid"].get<int>() > 0) Saw(w["pid"].get<int>());
  ::kill(pid_, SIGTERM);
  int status = 0;
  bool exited = WaitFor([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, limit);
  if (!exited) return -1;
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

ClientResponse Daemon::Api(const std::string& method, const std::string& target, const std::string& body) {
  return CallControl(socket(), method, target, body);
}

nlohmann::json Daemon::Service(const std::string& name) {
  auto r = Api("GET", "/v1/services/" + name);
  return r.status == 200 ? r.body : nlohmann::json();
}

int Daemon::Port(const std::string& service, const std::string& listener) {
  nlohmann::json status = Service(service);  // named: a temporary would die before the loop body
  for (const char* kind : {"listeners", "proxies"})
    for (const auto& l : status[kind])
      if (l["name"] == listener) {
        std::string addr = l["address"];
        return std::stoi(addr.substr(addr.rfind(':') + 1));
      }
  return 0;
}

std::vector<int> Daemon::WorkerPids(const std::string& service, const std::string& gen_state) {
  std::vector<int> pids;
  nlohmann::json status = Service(service);
  for (const auto& g : status["generations"])
    if (g["state"] == gen_state)
      for (const auto& w : g["workers"])
        if (w["pid"].get<int>() > 0) pids.push_back(w["pid"].get<int>());
  for (int pid : pids) Saw(pid);
  return pids;
}

CommandResult Daemon::Ctl(std::vector<std::string> args) {
  args.insert(args.begin(), {BATONCTL_PATH, "-s", socket()});
  return RunCommand(args);
}

std::string Daemon::Log() const {
  std::ifstream in(dir_.path + "/batond.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string LastLines(const std::string& text, size_t n) {
  size_t pos = text.size();
  while (n-- > 0 && pos > 0) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
  }
  return text.substr(pos);
}

std::string WebService(int replicas, const std::string& extra, const std::string& worker_args) {
  return R"(
[service.web]
command = ["@WORKER@", "--version", "{version}", "--notify")" +
         worker_args + R"(]
version = "v1"
replicas = )" +
         std::to_string(replicas) + R"(
bake_time = "0s"
)" + extra +
         R"(
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.ready]
notify = true
timeout = "5s"
[service.web.stop]
timeout = "5s"
)";
}

bench::LoadReport ZeroDropUpgrades(Daemon& d, const std::string& service, const std::string& broken_version,
                                   const std::vector<std::string>& broken_command, const std::string& broken_reason,
                                   int upgrades) {
  d.Start();
  INFO(d.Log());
  REQUIRE(d.Service(service)["state"] == "running");
  Load load(d.Port(service), 6);
  REQUIRE(load.WaitForVersion("v1", 20s));
  double slowest_s = 0;
  for (int i = 0; i < upgrades; ++i) {
    std::string v = i % 2 == 0 ? "v2" : "v1";
    auto t0 = std::chrono::steady_clock::now();
    auto r = d.Ctl({"upgrade", service, "--version", v});
    slowest_s = std::max(slowest_s, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (r.exit_code != 0 || !load.WaitForVersion(v, 20s))
      FAIL("upgrade " << i + 1 << " to " << v << ": batonctl exited " << r.exit_code << ": " << r.output
                      << "\nload: " << load.failures() << "\nbatond's log, the end:\n"
                      << LastLines(d.Log(), 80));
  }
  std::vector<std::string> args = {"upgrade", service, "--version", broken_version};
  if (!broken_command.empty()) args.push_back("--");
  args.insert(args.end(), broken_command.begin(), broken_command.end());
  auto bad = d.Ctl(args);
  INFO(bad.output);
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.output, Catch::Contains(broken_reason) && Catch::Contains("v1 is still serving"));
  REQUIRE(load.WaitForVersion("v1", 20s));
  load.Stop();
  auto report = load.Report();
  std::cout << service << ": " << upgrades << " upgrades (the slowest took " << slowest_s
            << " s) and a broken release under load: " << report.Summary() << std::endl;
  INFO(report.Summary());
  CHECK(report.failed == 0);
  CHECK(report.versions.count(broken_version) == 0);
  CHECK(report.versions["v1"] > 0);
  CHECK(report.versions["v2"] > 0);
  return report;
}

}  // namespace baton::it
