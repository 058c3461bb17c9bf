// One service: its generations and the handover state machine. Passive and pure: it sees
// the world only through Clock, ProcessLauncher, ProbeRunner and the listener fds it is
// given, and is driven by calls on the loop thread (requests, process exits via
// ProcessEvents, readiness results, timers). Tests drive it with fakes.
//
// The handover is a table of where a worker stands x what happened to it
// (handover_table.h); Dispatch runs the cell's method. A progressive rollout is a Rollout
// (rollout.h) held for the length of the handover.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>

#include "supervisor/base/json_writer.h"
#include "supervisor/base/lifetime.h"
#include "supervisor/control/protocol.h"
#include "supervisor/handover/generation.h"
#include "supervisor/handover/handover_table.h"
#include "supervisor/handover/rollout.h"
#include "supervisor/handover/service_snapshot.h"
#include "supervisor/handover/steering.h"
#include "supervisor/notify/notify_message.h"
#include "supervisor/process/process_memory.h"

namespace baton {

// As status shows it: starting (nothing live yet), running, baking (within bake_time of a
// handover), upgrading, down (nothing live), fatal, stopping (batond exits, or batonctl
// stop), stopped.
enum class ServiceState { kStarting, kRunning, kBaking, kUpgrading, kDown, kFatal, kStopping, kStopped, kWaiting };
const char* ServiceStateName(ServiceState s);

struct ListenerRef {
  std::string name;
  int fd = -1;   // batond's fd; placed at 3 + index in workers
  int port = 0;  // 0 for unix sockets
  std::string address;
};

// What a service is given of the outside world.
struct ServiceIo {
  std::vector<ListenerRef> listeners;
  std::string notify_socket;
  std::vector<std::pair<std::string, std::string>> base_env;
  std::function<Result<int>()> pick_probe_port;  // also picks proxy backend ports
  std::function<bool(int port)> port_free;       // whether 127.0.0.1:port could be bound now
  // Proxy mode: connections still routed to a generation, over every proxied listener;
  // with `unanswered_only`, those with no byte from the worker yet.
  std::function<size_t(int64_t generation, bool unanswered_only)> proxied_connections;
  std::function<GenerationTraffic(int64_t generation)> traffic;
  // Kernel-steered listeners: per-generation sockets and where new connections go; null
  // when the service has none.
  TrafficSteering* steering = nullptr;
  // Every handover outcome, whoever asked for it (operator, start, automatic rollback).
  std::function<void(const Release&, const HandoverResult&)> on_result;
  // Every line a worker writes to stdout or stderr.
  std::function<void(const Generation&, int pid, OutputStream, std::string_view)> on_output;
  // The service's env_file, read at the start of every handover (config/env_file.h); null:
  // nothing is read.
  std::function<Result<std::vector<std::pair<std::string, std::string>>>(const std::vector<std::string>&)>
      read_env_files;
  // The resident memory of a process group, in bytes ([service.X.recycle] max_memory);
  // null: memory is not looked at.
  std::function<Result<uint64_t>(int pgid)> group_rss;
  // A worker of `generation` was replaced (the replacement took over), and why.
  std::function<void(const Generation&, ReplaceCause)> on_replaced;
};

// Running totals, for metrics.
struct ServiceCounters {
  uint64_t handovers_promoted = 0;
  uint64_t handovers_failed = 0;
  uint64_t restarts = 0;
  uint64_t hook_failures = 0;
  uint64_t health_failures = 0;                  // rounds of health probes that failed
  std::map<std::string, uint64_t> replacements;  // workers replaced, by cause
  uint64_t replace_failures = 0;                 // replacements that did not get ready
  double last_handover_seconds = 0;
};

class Service {
 public:
  using Done = std::function<void(const HandoverResult&)>;
  using EventSink = std::function<void(const ServiceEvent&)>;

  Service(Clock& clock, ProcessLauncher& launcher, ProbeRunner& probes, ServiceConfig config, ServiceIo io,
          EventSink sink);
  ~Service();

  // Starts a handover to `release`. Returns an error at once, touching nothing, when the
  // release is invalid or another handover is in progress; otherwise `done` is called
  // once with the outcome (never from inside this call).
  Status Handover(const Release& release, HandoverKind kind, Done done);
  // Stops every worker (stop signal, then SIGKILL after stop.timeout); `done` once all
  // have exited. After Shutdown nothing starts again; after Stop, Handover starts anew.
  void Shutdown(std::function<void()> done);
  Status Stop(std::function<void()> done);
  // Changes the number of workers: the live generation grows or shrinks at once, and
  // later handovers start this many.
  Status Scale(int replicas);
  // Sends `sig` to every running worker's process group; returns how many were signalled.
  int Signal(int sig);
  // Replaces every worker of the live generation, one at a time, each by a fresh worker of
  // the same release that must be ready before the old one gets its stop signal. Refused
  // during a handover or another recycle. Returns how many workers will be replaced.
  Result<int> Recycle();
  // Takes new settings (and listeners, in fd order). Running workers keep what they were
  // started with; new workers and the next handover use the new settings. The live
  // generation is not resized here: call Scale for that.
  void Reconfigure(const ServiceConfig& config, std::vector<ListenerRef> listeners);
  // READY=1, STATUS=, and the FD store: FDSTORE=1 with FDNAME= keeps the descriptors sent
  // along (replacing any of the same name), FDSTOREREMOVE=1 drops those named FDNAME;
  // every worker started afterwards gets them after its listeners, named in LISTEN_FDNAMES.
  void OnNotify(int worker_pid, const NotifyMessage& msg);
  // Proxy mode. A backend port for a new connection on `listener`: a ready worker of the
  // live generation when `generation` is 0, else of that generation; round robin.
  // With `commit` false, only whether there is one: the rotation and the progressive split
  // do not move.
  std::optional<std::pair<int64_t, int>> Backend(const std::string& listener, int64_t generation, bool commit = true);
  // A proxied connection to `generation` closed or was answered: a draining generation
  // waiting for its connections may be stopped now.
  void OnProxyConnectionsChanged(int64_t generation);
  // Progressive rollouts (service_progressive.cc): skip the remaining steps; hold the
  // current step; carry on; give up, as if the current step had failed.
  Status PromoteNow();
  Status Pause();
  Status Resume();
  Status Abort(const std::string& why);
  bool progressive_running() const { return handover_ && handover_->rollout; }
  // The release to return to when a fresh generation crashes within bake_time.
  void SetPreviousRelease(std::optional<Release> release) { previous_release_ = std::move(release); }
  // Self-upgrade (service_snapshot.cc). OK when the service can be carried over to a new
  // batond program now; else what it is busy with (a handover, a drain, a worker
  // starting or stopping).
  Status CheckQuiet() const;
  // Everything Restore needs; the FD store's descriptors are added to `keep`.
  ServiceSnapshot Snapshot(std::vector<int>* keep) const;
  // Takes up where Snapshot left off, in a Service that has run nothing yet: the live
  // generation's workers are reattached through the launcher, nothing is spawned or
  // signalled. A worker that cannot be reattached is restarted.
  Status Restore(const ServiceSnapshot& snapshot);
  // Generation ids continue across restarts of batond.
  void SetNextGenerationId(int64_t id) { next_gen_id_ = std::max(next_gen_id_, id); }

  const std::string& name() const { return config_.name; }
  const ServiceConfig& config() const { return config_; }
  bool OwnsPid(int pid) const;
  const Generation* live() const;
  // The generation a handover in progress is starting, else null.
  const Generation* pending() const;
  bool handover_in_progress() const { return handover_.has_value(); }
  bool stopped() const { return stopped_; }
  // The id of the generation a handover in progress is starting, else 0.
  int64_t pending_generation() const { return handover_ ? handover_->new_gen : 0; }
  const std::string& fatal_reason() const { return fatal_reason_; }
  // Start order: the services this one waits for before its first start (none: it may
  // start, or has).
  void WaitFor(std::vector<std::string> services) { waiting_for_ = std::move(services); }
  const std::vector<std::string>& waiting_for() const { return waiting_for_; }
  ServiceState State() const;
  std::string StateName() const { return ServiceStateName(State()); }
  const ServiceCounters& counters() const { return counters_; }
  // Status: the service's own fields; its generations and workers, written as text (the
  // bulk of a status with many workers), each generation with its open proxied
  // connections when `proxied` is given and each worker with its CPU time and resident
  // memory (`usage`) with `usage`; both together as one tree.
  using ProxiedConnections = std::function<size_t(int64_t generation)>;
  using WorkerUsage = std::function<std::optional<ProcessUsage>(int pid)>;
  nlohmann::json DescribeFields() const;
  void WriteGenerations(JsonWriter& out, const ProxiedConnections& proxied = {}, const WorkerUsage& usage = {}) const;
  nlohmann::json Describe() const;

 private:
  struct Pending {
    HandoverKind kind;
    int64_t new_gen = 0;
    int64_t old_gen = 0;  // 0 when nothing was live
    size_t batch = 0;     // workers per batch
    SteadyTime started{};
    Done done;
    // Progressive: from the moment the new generation is ready.
    std::optional<Rollout> rollout = std::nullopt;
    std::unique_ptr<Timer> step_timer = nullptr;
  };

  // Handover steps.
  void SpawnBatch();
  void OnStartingWorkerReady(Generation& gen, Worker& w);
  void Promote();
  void FailHandover(const std::string& reason);
  // Progressive steps.
  void BeginStep(int step);
  void ArmStepTimer(Duration left);
  void OnStepEnd();
  void NextStep();
  GenerationTraffic TrafficOf(int64_t generation) const;
  nlohmann::json DescribeProgress() const;
  // Worker events, and the table's cells (handover_table.h).
  void OnWorkerExit(int64_t gen_id, int worker_id, int pid, const ExitInfo& exit);
  void OnReadiness(int64_t gen_id, int worker_id, int pid, Status status);
  WorkerStanding StandingOf(const Generation& gen, const Worker& w) const;
  void Dispatch(Generation& gen, Worker& w, WorkerEvent event, const std::string& detail = "");
  void MarkReady(Generation& gen, Worker& w);
  // After `delay`, `event` for the worker, if it and its generation still exist.
  void ArmWorkerTimer(const Generation& gen, Worker& w, Duration delay, WorkerEvent event);
  void OnStartingWorkerExit(Generation& gen, Worker& w);
  bool LostPortRace(const Worker& w) const;
  static constexpr int kMaxPortRaces = 3;
  void OnLiveWorkerExit(Generation& gen, Worker& w);
  void OnStoppingWorkerExit(Generation& gen, Worker& w);
  void OnStopTimeout(Generation& gen, Worker& w);
  void OnRestartDue(Generation& gen, Worker& w);
  void OnBakeExpired();
  // A crash or a failed health check within bake_time: back to the previous release.
  // False when that does not apply or the rollback was refused.
  bool RollBackWithinBake(Generation& gen, const std::string& what);

  // Liveness and replacement (service_replace.cc).
  void WatchLiveness(Generation& gen, Worker& w);
  void OnUnhealthy(int64_t gen_id, int worker_id, int pid, const std::string& reason);
  Status Replace(Generation& gen, Worker& w, ReplaceCause cause, const std::string& why);
  void OnLiveWorkerReady(Generation& gen, Worker& w);
  void TakeOver(Generation& gen, Worker& replacement);
  void ReplacementFailed(Generation& gen, Worker& replacement, const std::string& why);
  bool ReplacementInFlight(const Generation& gen) const;
  // Recycling: the operator's queue first, then max_memory and max_age; one at a time.
  void NextRecycle();
  void ArmRecycleTimer();
  void ScheduleSweep();

  // Mechanics.
  Status SpawnWorker(Generation& gen, Worker& w);
  ProcessEvents WorkerEvents(int64_t gen_id, int worker_id, std::shared_ptr<int> pid);
  void ScheduleRestart(Generation& gen, Worker& w, Duration delay);
  void StartBake(Duration remaining);
  Result<LaunchSpec> BuildLaunchSpec(const Release& release, const Generation* gen, std::optional<int> probe_port,
                                     const std::map<std::string, int>& backend_ports, std::vector<Probe>* probes,
                                     std::vector<Probe>* health_probes = nullptr) const;
  // Kernel steering: sends new connections where the generations' states say (the live
  // generation, or the split of a progressive step; nowhere while nothing is live).
  void SteerTraffic();
  void Drain(Generation& old);
  void WatchDrain(int64_t gen_id);
  void StoreFds(const Generation& gen, int pid, const NotifyMessage& msg);
  size_t ConnectionsHolding(int64_t generation) const;
  size_t HeldFor(int64_t generation) const;  // proxied connections and accept queues
  bool Steered() const;                      // has a kernel-steered listener
  void StopWorker(Generation& gen, Worker& w);
  void StopGeneration(Generation& gen, GenState final_state);
  void RefillLive();
  void RetireIfDone(Generation& gen);
  void StopAll(std::function<void()> done);
  void MaybeFinishStop();
  Status RestoreLive(const nlohmann::json& live, const std::vector<CarriedWorker>& workers);
  void RestoreWorker(Generation& gen, const CarriedWorker& worker);
  SteadyTime SteadyOf(double wall_then) const;
  nlohmann::json CountersJson() const;
  void DrainNow(Generation& old);
  // Runs hook `hook` (its argv from config; none: `then` at once) for `gen`; a failure is
  // counted and reported (hook_failed) before `then` hears of it.
  void RunHook(const char* hook, const std::vector<std::string>& argv, const Generation* gen,
               const std::string& from_version, const std::string& reason, std::function<void(Status)> then = {});
  void Emit(EventType type, const Generation* gen, int pid, const std::string& message,
            std::optional<double> duration_s = std::nullopt);
  Generation* FindGen(int64_t id);
  Worker* FindWorker(int64_t gen_id, int worker_id);
  Generation* MutableLive();

  Clock& clock_;
  ProcessLauncher& launcher_;
  ProbeRunner& probes_;
  ServiceConfig config_;
  ServiceIo io_;
  EventSink sink_;

  std::vector<std::unique_ptr<Generation>> gens_;  // not yet exited, oldest first
  std::deque<nlohmann::json> retired_;             // last few exited or failed generations
  int64_t next_gen_id_ = 1;
  std::optional<Pending> handover_;
  std::optional<HandoverResult> last_result_;
  std::optional<Release> previous_release_;
  std::unique_ptr<Timer> bake_timer_;  // set while the live generation is baking
  SteadyTime bake_due_{};
  std::unique_ptr<Timer> kickoff_;        // defers the first spawn out of Handover()
  std::unique_ptr<Timer> sweep_;          // erases exited generations and replaced workers from the loop
  std::unique_ptr<Timer> recycle_timer_;  // with [recycle]: the next look at memory and age
  std::deque<int> recycle_queue_;         // workers of the live generation the operator asked to recycle
  SteadyTime recycle_hold_until_{};       // after a replacement failed: no automatic recycle before
  std::string fatal_reason_;
  std::vector<std::string> waiting_for_;
  bool shutting_down_ = false;  // batond is exiting: nothing starts again
  bool stopped_ = false;        // stopped by the operator: no restarts until a handover
  std::function<void()> stop_done_;
  ServiceCounters counters_;
  size_t round_robin_ = 0;
  // FDSTORE=1: descriptors workers left for their successors, by name, oldest first.
  std::vector<std::pair<std::string, std::shared_ptr<UniqueFd>>> fd_store_;
  Lifetime alive_;  // guards process callbacks
};

}  // namespace baton
