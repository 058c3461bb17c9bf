// The configuration as plain structs: what baton.toml(5) documents. Produced by
// LoadConfig (parse + validate); every field has its default here.
#pragma once

#include <csignal>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/base/clock.h"
#include "supervisor/config/address.h"
#include "supervisor/config/port_range.h"

namespace baton {

using namespace std::chrono_literals;

// How a listener's connections reach the workers.
//   kKernel: each generation's workers receive a socket of their own (fd 3+, LISTEN_FDS,
//            NGINX=, ...) in a reuseport group that batond owns, and a BPF program on the
//            group sends each new connection to a generation that is ready (tcp, tcp6, udp;
//            the default for them).
//   kShared: every generation's workers receive the one socket, and the kernel hands each
//            connection to whichever process accepts first (unix, systemd:NAME, or
//            steering = "shared").
//   kProxy:  batond accepts and forwards each connection to a worker of the live
//            generation, which binds a private loopback port of its own ({port:NAME}, PORT).
enum class ListenMode { kKernel, kShared, kProxy };

// Where a table was declared in the file, for errors found later (e.g. a port in use). Two
// places are always equal: moving a block within the file changes nothing it configures.
struct Declared {
  int line = 0;
  int column = 0;
  friend bool operator==(const Declared&, const Declared&) { return true; }
};
const char* ListenModeName(ListenMode mode);

struct ProxyConfig {
  bool proxy_protocol = false;    // send a PROXY protocol v2 header to the backend first
  int max_connections = 10000;    // beyond this, connections wait in the accept queue
  Duration idle_timeout = 600s;   // no byte either way for this long closes the connection
  Duration connect_timeout = 2s;  // one connection attempt to a backend
  int connect_retries = 3;        // further attempts, against the same generation
  bool operator==(const ProxyConfig&) const = default;
};

struct ListenerConfig {
  std::string name;
  SocketAddress address;
  int backlog = 4096;
  Declared at;
  ListenMode mode = ListenMode::kKernel;
  ProxyConfig proxy;                                             // when mode is kProxy
  bool inherited() const { return mode != ListenMode::kProxy; }  // workers get the socket
  friend bool operator==(const ListenerConfig&, const ListenerConfig&) = default;
};

struct ReadyConfig {
  bool notify = false;              // wait for sd_notify READY=1
  std::optional<std::string> http;  // URL template; 2xx is ready
  std::optional<std::string> tcp;   // "HOST:PORT" template; connect is ready
  std::vector<std::string> exec;    // argv template; exit 0 is ready
  Duration timeout = 30s;           // all checks must pass within this
  Duration interval = 200ms;        // between probe attempts
  Duration probe_timeout = 2s;      // one attempt
  Duration min_uptime = 0ms;        // worker must also have run this long
  bool has_probe() const { return http || tcp || !exec.empty(); }
  friend bool operator==(const ReadyConfig&, const ReadyConfig&) = default;
};

// [service.X.health]: liveness of every worker of the live generation, after it was
// ready. Probes (as in `ready`) run every `interval`; `failures` failed rounds in a row,
// or no WATCHDOG=1 within `watchdog`, and the worker is replaced: a fresh worker of the
// same release starts, and the failing one is stopped once that one is ready.
struct HealthConfig {
  std::optional<std::string> http;  // URL template; 2xx is healthy
  std::optional<std::string> tcp;   // "HOST:PORT" template; connect is healthy
  std::vector<std::string> exec;    // argv template; exit 0 is healthy
  Duration interval = 10s;          // between rounds of probes
  Duration timeout = 2s;            // one probe
  int failures = 3;                 // failed rounds in a row before the worker is replaced
  Duration watchdog = 0ms;          // sd_notify watchdog (WATCHDOG_USEC); 0: off
  bool has_probe() const { return http || tcp || !exec.empty(); }
  bool enabled() const { return has_probe() || watchdog.count() > 0; }
  friend bool operator==(const HealthConfig&, const HealthConfig&) = default;
};

// [service.X.recycle]: workers of the live generation are replaced, one at a time and
// never during a handover, by the same replacement as a failed health check.
struct RecycleConfig {
  uint64_t max_memory = 0;  // bytes of RSS of the worker's process group; 0: no limit
  Duration max_age = 0ms;   // 0: no limit
  Duration interval = 10s;  // how often memory and age are looked at
  bool enabled() const { return max_memory > 0 || max_age.count() > 0; }
  friend bool operator==(const RecycleConfig&, const RecycleConfig&) = default;
};

struct StopConfig {
  int signal = SIGTERM;
  // Who gets the stop signal: the worker's whole process group (false: only its main
  // process, which stops the rest itself, as a pre-fork server's master does; systemd's
  // KillMode=mixed). SIGKILL at `timeout` goes to the group either way.
  bool signal_group = true;
  Duration timeout = 10s;  // grace before SIGKILL to the process group
  // Proxy mode: how long a replaced generation keeps its proxied connections before it is
  // sent the stop signal (it is signalled as soon as the last one closes).
  Duration drain_timeout = 30s;
  // Proxy mode: false signals the replaced generation once every connection routed to it
  // has been answered, for servers whose stop signal is itself a graceful drain (nginx
  // QUIT, gunicorn TERM) that closes idle keep-alive connections, which would otherwise
  // hold the generation until drain_timeout.
  bool wait_for_connections = true;
  friend bool operator==(const StopConfig&, const StopConfig&) = default;
};

struct RestartConfig {
  Duration initial_backoff = 1s;
  Duration max_backoff = 30s;
  double multiplier = 2.0;
  int max_failures = 5;        // quick failures in a row before the service is fatal
  Duration reset_after = 10s;  // a worker that ran this long resets the failure count
  friend bool operator==(const RestartConfig&, const RestartConfig&) = default;
};

struct RolloutConfig {
  int batch = 0;  // workers per batch in a rolling handover; 0 means all at once
  // strategy = "progressive" (proxy mode only): once the new generation is ready, it gets
  // steps[i] percent of new connections for step_time each, while the old one keeps the
  // rest; a step that breaks a threshold, or a failing `check`, aborts the handover.
  bool progressive = false;
  std::vector<int> steps = {1, 10, 50, 100};
  Duration step_time = std::chrono::seconds(30);
  int64_t max_connect_failures = 0;  // per step, to the new generation, after retries
  int64_t max_resets = 0;            // per step, resets from the new generation's workers
  double max_error_ratio = 1.0;      // (failures + resets) / connections per step
  std::vector<std::string> check;    // argv run at the end of each step; exit 0 passes
  friend bool operator==(const RolloutConfig&, const RolloutConfig&) = default;
};

// Resource limits for workers (setrlimit in the child); unset: inherited from batond.
// A log file batond writes, rotated by size: web.1.log is the one before web.log, up to
// web.KEEP.log.
struct LogFileConfig {
  std::string file;                  // empty: none
  uint64_t max_size = 100ull << 20;  // bytes
  int keep = 5;                      // rotated files kept
  friend bool operator==(const LogFileConfig&, const LogFileConfig&) = default;
};

// [service.X.hooks]: commands batond runs at points of a handover (argv; empty: none),
// each within `timeout`. Only before_start can stop a handover.
struct HooksConfig {
  std::vector<std::string> before_start, on_promoted, on_failed, on_rollback, on_fatal, before_drain;
  Duration timeout = 30s;
  friend bool operator==(const HooksConfig&, const HooksConfig&) = default;
};

struct LimitsConfig {
  std::optional<uint64_t> nofile, nproc, core;  // kUnlimited for "infinity"
  static constexpr uint64_t kUnlimited = ~uint64_t{0};
  friend bool operator==(const LimitsConfig&, const LimitsConfig&) = default;
};

struct ServiceConfig {
  std::string name;
  std::vector<std::string> command;  // argv template
  std::string version;
  int replicas = 1;
  std::map<std::string, std::string> env;  // templates
  // env_file: files in systemd's EnvironmentFile= syntax (config/env_file.h), read at each
  // handover; they override `env`, and the release's own env overrides them.
  std::vector<std::string> env_files;
  // Services that must be live before this one starts, and that stop after it
  // (config/start_order.h).
  std::vector<std::string> after;
  LogFileConfig log;  // [service.X.log]: the workers' output, tagged as in batond's log
  HooksConfig hooks;
  std::string cwd;
  std::vector<ListenerConfig> listeners;
  ReadyConfig ready;
  HealthConfig health;
  RecycleConfig recycle;
  StopConfig stop;
  RestartConfig restart;
  RolloutConfig rollout;
  Duration bake_time = 10s;
  int fd_store_max = 16;  // descriptors workers may leave for their successors (FDSTORE=1)
  // Least privilege. Workers run as `user` (batond must run as root), in `group` (default:
  // the user's) with the user's groups plus `supplementary_groups`, with `umask` and
  // `limits`, and an environment of PATH, the `pass_env` variables taken from batond's,
  // `env`, `env_file`, and what batond sets (LISTEN_*, NOTIFY_SOCKET, BATON_*; HOME, USER, LOGNAME
  // with `user`).
  std::string user, group;
  std::vector<std::string> supplementary_groups;
  std::optional<unsigned> umask;
  LimitsConfig limits;
  std::vector<std::string> pass_env;
  Declared at;
  friend bool operator==(const ServiceConfig&, const ServiceConfig&) = default;
  bool has_proxy() const {
    for (const auto& l : listeners)
      if (l.mode == ListenMode::kProxy) return true;
    return false;
  }
};

enum class SteeringProgram { kAuto, kEbpf, kCbpf };
const char* SteeringProgramName(SteeringProgram p);

struct DaemonConfig {
  std::string control_socket = "/run/baton/control.sock";
  std::string state_dir = "/var/lib/baton";
  std::string log_level = "info";
  std::vector<unsigned> allow_uids;  // besides root and batond's own uid
  std::vector<unsigned> allow_gids;
  std::string socket_group;        // group name or number; makes the socket 0660
  Duration control_timeout = 10s;  // a client must send its whole request within this
  size_t log_lines = 1000;         // worker output lines kept per service
  LogFileConfig log;               // log_file, log_max_size, log_keep: batond's own log, besides stderr
  bool log_json = false;           // log_format = "json": one JSON object per line, stderr and files
  PortRange port_range;            // loopback ports handed to workers ({probe_port}, proxy backends)
  std::string port_range_at;       // "FILE:LINE:COL" where the config set port_range, else empty
  // Kernel steering: "ebpf" where the kernel lets batond load it, else "cbpf" (auto); or
  // only one of them. And how long a UDP flow may be silent and keep its generation (eBPF).
  SteeringProgram steering_program = SteeringProgram::kAuto;
  Duration udp_flow_idle = 10s;
  // Where load balancers ask whether this host serves (GET /livez, /readyz): tcp:// or
  // tcp6://, read-only, off unless set.
  std::optional<SocketAddress> health;
  // The web dashboard: tcp:// or tcp6://, off unless set; its API needs the bearer token
  // in state_dir/web.token. `web = { address = "...", read_only = true }` allows no action.
  std::optional<SocketAddress> web;
  bool web_read_only = false;
};

// An outbound tunnel: SSH sessions to edges that forward a port opened on the edge (ssh -R)
// back into one of batond's own listeners.
struct TunnelConfig {
  std::string name;
  std::vector<std::pair<std::string, int>> edges;  // host, port: one session each
  std::string user = "root";
  std::string identity;                   // private key file
  std::string known_hosts;                // the edges' host keys; always verified
  std::string remote_host = "127.0.0.1";  // remote_bind: where the edge listens
  int remote_port = 0;
  std::string to_service, to_listener;  // "SERVICE.LISTENER": where forwarded connections go
  Duration keepalive = 10s;             // interval between keepalives once up
  int keepalive_misses = 3;             // intervals without a byte from the edge before it is dead
  Duration backoff = 1s;                // reconnect delays: full jitter over backoff * 2^n, capped
  Duration max_backoff = 60s;
  Duration healthy_after = 30s;  // a session up this long resets the backoff
  Duration shutdown_grace = 5s;  // on batond stop: open channels may finish within this
  bool proxy_protocol = false;   // a PROXY v2 header with the edge's client address first
  Declared at;
  friend bool operator==(const TunnelConfig&, const TunnelConfig&) = default;
};

struct Config {
  std::string path;
  DaemonConfig daemon;
  std::vector<ServiceConfig> services;
  std::vector<TunnelConfig> tunnels;
  std::vector<std::string> warnings;  // accepted but worth telling the operator
  std::string text;                   // the file as read: a self-upgrade hands it to the next program
  const ServiceConfig* FindService(std::string_view name) const {
    for (const auto& svc : services)
      if (svc.name == name) return &svc;
    return nullptr;
  }
};

// Reads, parses and validates. Errors read "FILE:LINE:COL: KEY: message".
Result<Config> LoadConfig(const std::string& path);
Result<Config> ParseConfig(std::string_view text, const std::string& path);
// daemon.port_range against the kernel's ephemeral range (LoadConfig passes the one in /proc):
// an error naming the line when the config set an overlapping range, a warning for the default.
Status CheckPortRange(Config& config, std::optional<PortRange> ephemeral);

// Signal names ("TERM", "SIGTERM", "15") to numbers; -1 if unknown.
int ParseSignal(std::string_view name);
std::string SignalName(int sig);

}  // namespace baton
