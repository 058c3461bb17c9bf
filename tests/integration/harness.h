// Integration test harness: runs the real batond in a temporary directory with real
// workers on loopback, and waits on conditions with deadlines (never fixed sleeps).
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/loadgen.h"
#include "ctl/client.h"
#include "tests/helpers/skip.h"

namespace baton::it {

using namespace std::chrono_literals;

struct TempDir {
  TempDir();
  ~TempDir();
  std::string path;
};

// Polls `condition` until it holds or `limit` passes; returns whether it held.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds limit = 10s);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
// Runs a command to completion; with `as_uid`, as that uid and the gid of the same number.
// Runs `argv` (as `as_uid` when given) and returns its exit code and output. A command
// still running after `limit` is killed: exit code -1, and the output says so.
CommandResult RunCommand(const std::vector<std::string>& argv, std::optional<unsigned> as_uid = std::nullopt,
                         std::chrono::milliseconds limit = 120s);

// The last `n` lines of `text` (for failure messages).
std::string LastLines(const std::string& text, size_t n);

// One request over a fresh connection to 127.0.0.1:`port`: the status (0 with `error` set
// when no whole response came) and the body.
struct HttpResponse {
  int status = 0;
  std::string body;
  std::string head;  // the status line and headers
};
// `headers`: more header lines, each ending in \r\n.
HttpResponse HttpRequest(int port, const std::string& method, const std::string& path, std::string* error = nullptr,
                         const std::string& headers = "");
// GET; returns the body of a 200, or "" with `error` set.
std::string HttpGet(int port, const std::string& path = "/", std::string* error = nullptr);

bool ProcessAlive(int pid);

// Runs `argv` (with `in_child` first, in the child) with its output appended to `log`;
// returns its pid. Everything the child uses must be allocated before the call.
int Spawn(const std::string& log, const std::vector<std::string>& argv, const std::function<void()>& in_child = {});
// SIGTERM to `signal_pid`, then `pid` (the same, or what runs it) must exit 0.
void ExpectOrderlyExit(int signal_pid, int pid);

// A loopback TCP port that was free a moment ago.
int FreePort();

// An NDJSON stream from the control socket, read line by line with deadlines.
class LineStream {
 public:
  LineStream(const std::string& socket, const std::string& method, const std::string& target);
  ~LineStream();
  // The next JSON line, or null if none arrived within `limit` or the stream ended.
  nlohmann::json Next(std::chrono::milliseconds limit = 10s);
  int status() const { return status_; }

 private:
  int fd_ = -1;
  int status_ = 0;
  std::string buffer_;
};

class Daemon {
 public:
  // Writes `config` (with @DIR@ replaced by the temp dir and @WORKER@ by the test worker)
  // to DIR/baton.toml. The control socket is DIR/ctl.sock and the state dir DIR/state.
  explicit Daemon(const std::string& services_config, const std::string& daemon_extra = "");
  ~Daemon();

  // Starts batond and waits until it answers and every service has left "starting".
  void Start();
  // Runs batond through `prefix` (e.g. prlimit, setpriv) at the next Start; `binary`
  // replaces the batond built here (e.g. a copy that another uid may execute).
  void SetWrapper(std::vector<std::string> prefix, std::string binary = BATOND_PATH) {
    wrapper_ = std::move(prefix);
    binary_ = std::move(binary);
  }
  // SIGTERM, then waits for exit; returns the exit code (-1 on timeout).
  int Stop(std::chrono::milliseconds limit = 20s);
  // SIGKILL, as an operator's kill -9 or the OOM killer would; reaps batond.
  void Kill();

  ClientResponse Api(const std::string& method, const std::string& target, const std::string& body = "");
  nlohmann::json Service(const std::string& name);
  int Port(const std::string& service, const std::string& listener = "http");
  std::vector<int> WorkerPids(const std::string& service, const std::string& gen_state = "live");
  CommandResult Ctl(std::vector<std::string> args);
  std::string Log() const;

  // Replaces the config file (same substitutions as the constructor).
  void WriteConfig(const std::string& services_config);
  const std::string& dir() const { return dir_.path; }
  std::string socket() const { return dir_.path + "/ctl.sock"; }
  int pid() const { return pid_; }

 private:
  TempDir dir_;
  std::string daemon_extra_;
  std::vector<std::string> wrapper_;
  std::string binary_ = BATOND_PATH;
  int pid_ = -1;
  // Workers seen, by pid and start time, killed at teardown if anything went wrong: only
  // while the pid still names that process (pids wrap, and tests run side by side).
  std::vector<std::pair<int, std::string>> seen_workers_;
  void Saw(int pid);
};

// Load from several client threads (half of them keeping connections alive) until
// stopped; see bench/loadgen.h for what counts as a failure.
class Load : public bench::LoadGenerator {
 public:
  Load(int port, int clients) : LoadGenerator({port, clients - clients / 2, clients / 2, "/"}) {}
  std::string failures() const { return Report().Summary(); }
  std::map<std::string, uint64_t> versions() const { return Report().versions; }
  bool WaitForVersion(const std::string& version, std::chrono::milliseconds limit = 10s) {
    return LoadGenerator::WaitForVersion(version, limit);
  }
};

// A service "web" of test workers that report readiness with sd_notify, on one TCP
// listener "http" at a free port; `extra` lines go into its [service.web] table, and
// `worker_args` (TOML strings, each with a leading comma) after the worker's own.
std::string WebService(int replicas = 2, const std::string& extra = "", const std::string& worker_args = "");

// The end-to-end cycle for `service` in `d` (not yet started): start, keep load (3 fresh
// and 3 keep-alive clients) through `upgrades` upgrades alternating v2 and v1, each seen in
// the responses; then an upgrade to `broken_version` (run as `broken_command` when given)
// that must fail with `broken_reason` while v1 keeps serving and that must answer no
// request. Checks zero failed requests and returns the load report.
bench::LoadReport ZeroDropUpgrades(Daemon& d, const std::string& service, const std::string& broken_version,
                                   const std::vector<std::string>& broken_command, const std::string& broken_reason,
                                   int upgrades = 100);

}  // namespace baton::it
