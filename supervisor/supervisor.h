// The top object of batond: owns the event loop, the listeners, the notify and control
// servers, the history, the worker logs and every Service, and wires their events. The
// only place that sees everything; the modules it owns see only their narrow interfaces.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <map>
#include <set>
#include <memory>

#include "supervisor/config/config.h"
#include "supervisor/config/reload_plan.h"
#include "supervisor/upgrade/carried_state.h"
#include "supervisor/control/api.h"
#include "supervisor/control/health_server.h"
#include "supervisor/control/http_server.h"
#include "supervisor/control/status_feed.h"
#include "supervisor/control/web_server.h"
#include "supervisor/handover/service.h"
#include "supervisor/health/asio_probe_runner.h"
#include "supervisor/history/history_store.h"
#include "supervisor/proxy/proxy.h"
#include "supervisor/tunnel/tunnel.h"
#include "supervisor/logs/log_buffer.h"
#include "supervisor/notify/notify_server.h"
#include "supervisor/logs/log_files.h"
#include "supervisor/notify/systemd_notifier.h"
#include "supervisor/sockets/kept_sockets.h"
#include "supervisor/process/posix_launcher.h"
#include "supervisor/sockets/listener_set.h"
#include "supervisor/sockets/port_pool.h"
#include "supervisor/steering/service_steering.h"

namespace baton {

// Exit codes, documented in batond(8).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 100;   // bad config or usage: permanent, fix the input
inline constexpr int kExitSystem = 111;  // a system error: may work when retried

class Supervisor : public Commands {
 public:
  struct CreateError {
    Status status;
    int exit_code;
  };
  // Binds every listener and opens state; starts nothing until Run().
  static std::unique_ptr<Supervisor> Create(Config config, CreateError* error);
  // After a self-upgrade: takes over the sockets, workers and connections the previous
  // program described in `carried` (supervisor_self_upgrade.cc); Run() carries on.
  // Until Run, the descriptors belong to the previous program: on failure the half-built
  // supervisor comes back with the error, for the caller to keep, unclosed, while it
  // returns to that program.
  struct Resumed {
    std::unique_ptr<Supervisor> supervisor;
    Status status;
  };
  static Resumed CreateResumed(Config config, CarriedState carried);
  ~Supervisor() override;

  // Starts every service and runs the loop until SIGTERM/SIGINT and the drain finish.
  int Run();

  // Commands (the control API's view of the daemon): supervisor_commands.cc.
  std::string StatusText(bool with_usage) override;
  std::string ServicesText() override;
  Result<std::string> ServiceStatusText(const std::string& service) override;
  Result<nlohmann::json> History(const std::string& service) override;
  Status Upgrade(const std::string& service, const UpgradeRequest& request, Progress progress, Done done) override;
  Status Rollback(const std::string& service, const std::optional<std::string>& to, Progress progress,
                  Done done) override;
  Status Restart(const std::string& service, Progress progress, Done done) override;
  Status Start(const std::string& service, Progress progress, Done done) override;
  Status Stop(const std::string& service, Progress progress, std::function<void()> done) override;
  Result<nlohmann::json> Scale(const std::string& service, int replicas) override;
  Result<nlohmann::json> Recycle(const std::string& service) override;
  Result<nlohmann::json> PromoteRollout(const std::string& service) override;
  Result<nlohmann::json> PauseRollout(const std::string& service) override;
  Result<nlohmann::json> ResumeRollout(const std::string& service) override;
  Result<nlohmann::json> Signal(const std::string& service, const std::string& signal) override;
  Result<nlohmann::json> Logs(const std::string& service, size_t lines) override;
  Result<uint64_t> FollowLogs(const std::string& service, Line line) override;
  uint64_t FollowEvents(Line line) override;
  Result<uint64_t> FollowStatus(Duration interval, std::function<void(std::string)> text) override;
  void Unsubscribe(uint64_t id) override;
  Result<nlohmann::json> Reload() override;                                              // supervisor_reload.cc
  Status SelfUpgrade(const std::string& binary, SelfUpgradeAccepted accepted) override;  // supervisor_self_upgrade.cc
  std::string Metrics() override;
  Result<nlohmann::json> Dashboard() override;

 private:
  struct ServiceSlot {
    std::unique_ptr<Service> service;
    std::vector<BoundListener> listeners;  // in config order, both modes
    LogBuffer logs;
    bool drained = false;                                         // removed by a reload and every worker has exited
    std::vector<std::unique_ptr<ProxyListener>> proxies;          // the proxied listeners
    std::vector<std::unique_ptr<ProxyListener>> retired_proxies;  // replaced by a reload, still open
    std::unique_ptr<ServiceSteering> steering;                    // the kernel-steered listeners' groups
    bool started = false;                      // its first start was asked for (start order: `after`)
    std::unique_ptr<ServiceLogFile> log_file;  // [service.X.log]
  };

  explicit Supervisor(Config config);
  // Start-up: a fresh one binds every listener; a resumed one takes over what the previous
  // program carried. Both then open the notify and control sockets and add the services.
  Status InitFresh(int* exit_code);
  Status InitResumed(int* exit_code);
  Result<std::optional<unsigned>> OpenState(int* exit_code);
  // The notify, control and health sockets: the carried ones (fds of the previous program)
  // when resumed, else new ones.
  struct DaemonSockets {
    int notify_fd = -1, control_fd = -1, health_fd = -1, web_fd = -1;
  };
  Status OpenServices(std::vector<std::vector<BoundListener>> bound, std::optional<unsigned> socket_group,
                      DaemonSockets carried);
  // promote, pause or resume (`act`) the progressive handover of `service`.
  Result<nlohmann::json> OnRollout(const std::string& service, const char* action, Status (Service::*act)());
  // Self-upgrade (supervisor_self_upgrade.cc).
  Status CheckQuiet() const;
  void ReplaceProgramWhenQuiet(const std::string& binary, const std::string& to_version, SteadyTime deadline);
  void ReplaceProgram(const std::string& binary, const std::string& to_version);
  CarriedState CaptureState(std::vector<int>* keep);
  Result<std::vector<std::vector<BoundListener>>> CarriedListeners();
  void RestoreCarried();
  void RecordSelfUpgrade(nlohmann::json outcome);
  // Binds a service's listeners, taking sockets from `reusable` where they match: by
  // ReuseKey (the same listener as before), or by bound address.
  Result<std::vector<BoundListener>> BindListeners(const ServiceConfig& svc,
                                                   std::map<std::string, BoundListener>* reusable);
  static std::string ReuseKey(const std::string& service, const std::string& listener,
                              const SocketAddress& configured) {
    return service + "|" + listener + "|" + configured.ToString();
  }
  Status AddService(const ServiceConfig& svc, std::vector<BoundListener> listeners);
  // The listeners workers inherit (fd 3, 4, ...): those not in proxy mode.
  static std::vector<ListenerRef> InheritedListeners(const ServiceConfig& svc, const std::vector<BoundListener>& bound);
  // (Re)creates a slot's proxies for its proxied listeners; the previous ones stop
  // accepting and stay until their connections close.
  void StartProxies(ServiceSlot& slot);
  ServiceIo IoFor(ServiceSlot& slot, const ServiceConfig& svc);
  void RecordResult(const std::string& name, const Release& release, const HandoverResult& result);
  nlohmann::json DescribeDaemon();
  // "services": [...]; with `usage`, each worker's CPU time and RSS (one read of /proc each).
  void WriteServices(JsonWriter& out, bool usage) const;
  void WriteServiceStatus(const ServiceSlot& slot, JsonWriter& out, bool usage) const;
  // Creates every tunnel's sessions; the first of each starts at once, the next when the
  // one before it is up or has failed once.
  Status CreateTunnels();
  nlohmann::json DescribeTunnels() const;
  void StartService(Service& svc);
  // [service.X.log]: opens the slot's log file as `svc` says (or closes it).
  Status OpenLogFile(ServiceSlot& slot, const ServiceConfig& svc);
  // SIGUSR1: every log file opened anew by name (after logrotate moved it).
  void ReopenLogs();
  // Start order: starts every service not started yet whose `after` are all live; the
  // others wait, saying for what.
  void StartWaiting();
  // Stop order: tells each service to drain once every service that names it in `after`
  // has stopped (stop_unfinished_: not stopped yet; stop_told_: told to drain).
  void StopInOrder(std::function<void()> one_done);
  std::set<std::string> stop_unfinished_, stop_told_;
  void OpenNotifySocketToWorkers();
  void OnSignal(int sig);
  void ReapOrphans();
  Result<nlohmann::json> ApplyReload();
  Config RunningConfig() const;
  Result<std::map<std::string, std::vector<BoundListener>>> BindForReload(const ReloadPlan& plan);
  void RemoveService(const std::string& name);
  void ApplyChange(const ServiceChange& change, const ServiceConfig& wanted, std::vector<BoundListener>* bound,
                   nlohmann::json& report);
  // Tells systemd (Type=notify) how things stand: READY=1 once every service has left
  // "starting", STATUS= with the live versions after each handover.
  void NotifySystemd(const ServiceEvent& e);
  bool StillStarting(const Service& svc) const;
  std::string StatusLine() const;
  void Watchdog();
  void Shutdown();
  void OnNotify(int pid, const NotifyMessage& msg);
  void Publish(const ServiceEvent& e);
  void OnOutput(const std::string& service, const Generation& gen, int pid, OutputStream stream, std::string_view line);
  Status RunHandover(Service& svc, const Release& release, HandoverKind kind, Progress progress, Done done);
  ServiceSlot* Find(const std::string& name) const;
  uint64_t Subscribe(std::function<void(const ServiceEvent&)> fn);

  Config config_;
  boost::asio::io_context io_;  // first: the loop's own fds precede the listeners
  std::unique_ptr<Clock> clock_;
  PosixLauncher launcher_;
  AsioProbeRunner probes_;
  PortPool ports_;  // {probe_port} and proxy backend ports, from daemon.port_range
  boost::asio::signal_set signals_;
  std::optional<HistoryStore> history_;
  std::unique_ptr<NotifyServer> notify_;
  ControlApi api_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<HealthServer> health_;  // with [daemon] health
  std::unique_ptr<WebServer> web_;        // with [daemon] web
  Status OpenWeb(int carried_fd);
  HealthView Health() const;
  std::vector<std::unique_ptr<ServiceSlot>> services_;  // in config order
  std::vector<std::unique_ptr<ServiceSlot>> removing_;  // removed by a reload, still draining
  struct TunnelSlot {
    TunnelConfig config;
    std::vector<std::unique_ptr<TunnelSession>> sessions;  // one per edge
  };
  std::vector<std::unique_ptr<TunnelSlot>> tunnels_;
  std::map<uint64_t, std::function<void(const ServiceEvent&)>> subscribers_;
  std::map<uint64_t, std::pair<std::string, Line>> log_followers_;  // id -> (service, sink)
  std::map<uint64_t, std::unique_ptr<StatusFeed>> status_feeds_;    // by their event subscription
  uint64_t next_subscriber_ = 1;
  size_t status_size_ = 0;  // the last whole status's, to reserve room for the next
  double started_wall_ = 0;
  bool stopping_ = false;
  uint64_t notify_ignored_ = 0;  // messages from pids that are no worker of ours
  uint64_t orphans_reaped_ = 0;
  uint64_t handler_exceptions_ = 0;  // bugs the loop survived
  std::string history_error_;        // why the last history write failed; empty once one succeeds
  std::unique_ptr<SystemdNotifier> systemd_;
  std::unique_ptr<SocketKeeper> keeper_;  // with systemd's file descriptor store
  // Every listener batond bound (not a socket unit's: systemd holds those anyway) is kept
  // in systemd's file descriptor store; one a reload dropped is forgotten.
  void KeepListeners();
  std::unique_ptr<Timer> watchdog_;
  bool announced_ready_ = false;
  std::string own_binary_;  // the program file batond runs, for a self-upgrade's default
  // Self-upgrade: the state the previous program carried over (until Run restored it),
  // whether an upgrade is underway, and the attempts so far with the last outcome.
  std::optional<CarriedState> carried_;
  bool self_upgrading_ = false;
  std::unique_ptr<Timer> replace_retry_;  // waiting for health checks to be answered
  nlohmann::json self_upgrade_ = {{"attempts", 0}};
};

// The new program's side of a self-upgrade: reads the state in `state_fd`, takes over
// and runs; or, when it cannot, executes the previous program again with the same state
// and `--resume-failed` (`previous_failure` is that reason, in the previous program).
// Returns batond's exit code.
int ResumeFromState(int state_fd, const std::string& previous_failure);

}  // namespace baton
