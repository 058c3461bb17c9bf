// Proxy mode: batond accepts on a public listener and forwards each connection to a
// worker's private loopback port, moving the bytes with splice(2) through a pipe per
// direction (no copy through user space), non-blocking, on the one event loop.
//
// Every socket of the proxy is registered once, edge-triggered, in an epoll set of the
// listener's own (EdgeSet), not waited on through the loop's reactor.
//
// A connection is routed once, when accepted, to a worker of the live generation, and
// stays with that generation until it closes: a handover changes where new connections
// go, never where existing ones are. While no backend is routable, or max_connections
// are open, the listener is not accepted from: clients wait in the kernel's accept queue
// instead of being refused.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "supervisor/base/lifetime.h"
#include "supervisor/base/unique_fd.h"
#include "supervisor/config/config.h"
#include "supervisor/proxy/edge_set.h"

namespace baton {

struct ProxyRoute {
  int64_t generation = 0;
  int port = 0;  // on 127.0.0.1
};

struct ProxyCounters {
  uint64_t active = 0;
  uint64_t total = 0;        // accepted
  uint64_t errors = 0;       // closed because no backend could be reached, retries included
  uint64_t retries = 0;      // backend connection attempts that failed and were retried
  uint64_t resets = 0;       // a reset from one side passed on to the other
  uint64_t idle_closed = 0;  // closed by idle_timeout
  uint64_t bytes_in = 0;     // client -> backend
  uint64_t bytes_out = 0;    // backend -> client
};

// Per generation, since it was first routed to: for progressive rollouts.
struct ProxyGenerationStats {
  uint64_t connections = 0;  // routed to it
  uint64_t failures = 0;     // closed because none of its workers could be reached
  uint64_t resets = 0;       // reset by its workers, or closed by them before any answer
};

class ProxyListener {
 public:
  // A backend for a new connection: of the live generation when `generation` is 0, else
  // of that generation (a retry). nullopt when there is none. With `commit` false, only
  // whether there is one (asked before accepting, which may find the queue empty).
  using Router = std::function<std::optional<ProxyRoute>(int64_t generation, bool commit)>;
  // A connection routed to `generation` closed, or got its first byte from the backend.
  using ChangedFn = std::function<void(int64_t generation)>;

  // Accepts from a duplicate of `listener_fd` (made non-blocking; the caller keeps its fd).
  ProxyListener(boost::asio::io_context& io, std::string name, int listener_fd, ProxyConfig config, Router router,
                ChangedFn changed);
  ~ProxyListener();  // closes every connection
  ProxyListener(const ProxyListener&) = delete;
  ProxyListener& operator=(const ProxyListener&) = delete;

  // Accepts again if accepting was paused for want of a backend.
  void Resume();
  // Stops accepting for good; open connections carry on until they close. The listener's
  // file flags are restored, as workers may inherit it after a reload changes its mode.
  void StopAccepting();

  // Self-upgrade: every open connection (sockets, pipes and the bytes in them, how far
  // each direction got) and the counters; the descriptors are added to `keep`.
  nlohmann::json Export(std::vector<int>* keep);
  // Carries on with the connections Export described in the previous program.
  Status Adopt(const nlohmann::json& carried);

  const std::string& name() const { return name_; }
  const ProxyCounters& counters() const { return counters_; }
  // Connections routed to `generation`; with `unanswered_only`, those that have not had a
  // byte from the backend yet, which may still wait in the backend's own accept queue.
  size_t Connections(int64_t generation, bool unanswered_only = false) const;
  ProxyGenerationStats Stats(int64_t generation) const;
  // A generation that has exited: its figures are dropped (each handover adds one).
  void ForgetGeneration(int64_t generation) { stats_.erase(generation); }
  bool paused() const { return paused_; }

 private:
  struct Connection;
  struct Flow;

  // EdgeSet keys: the listener's, then two per connection (ids start at 1).
  static constexpr uint64_t kListenerKey = 0;
  static uint64_t ClientKey(uint64_t id) { return id * 2; }
  static uint64_t BackendKey(uint64_t id) { return id * 2 + 1; }

  void OnReady(uint64_t key, uint32_t events);
  void AcceptSome();
  void Connect(Connection& c);
  void OnConnectDone(Connection& c, uint32_t events);
  void OnConnected(uint64_t id);
  void StartFlows(Connection& c);
  void RetryOrFail(uint64_t id, const std::string& why);
  void Pump(Connection& c, Flow& f);
  void ArmIdle(Connection& c);
  void Close(uint64_t id, bool reset_client, bool reset_backend);
  Connection* Find(uint64_t id);

  boost::asio::io_context& io_;
  std::string name_;
  ProxyConfig config_;
  Router router_;
  ChangedFn changed_;
  EdgeSet edges_;
  UniqueFd listener_;                       // a duplicate of the caller's, non-blocking
  boost::asio::steady_timer accept_retry_;  // after an accept error other than EAGAIN
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::map<int64_t, size_t> per_generation_, unanswered_;
  std::map<int64_t, ProxyGenerationStats> stats_;
  std::vector<std::pair<UniqueFd, UniqueFd>> spare_pipes_;  // empty pipes of closed connections, reused
  uint64_t next_id_ = 1;
  bool paused_ = false;
  bool accepting_ = true;
  bool resume_posted_ = false;
  int original_flags_ = 0;  // of the listener's open file, restored when accepting stops
  ProxyCounters counters_;
  Lifetime alive_;  // guards handlers queued on the loop
};

}  // namespace baton
