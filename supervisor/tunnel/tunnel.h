// Outbound tunnels: batond is the SSH client (libssh, non-blocking, on the one loop) and
// asks each edge, a stock OpenSSH server, to listen on remote_bind and forward what
// arrives (the protocol behind `ssh -R`). Every forwarded channel becomes a connection
// into one of batond's own listeners, so whichever generation is live accepts it and the
// accept queue holds it across handovers. Workers never see the SSH sockets.
//
// A session: connect -> handshake -> host key check -> public key auth -> forward -> up.
// Any failure or loss closes it and retries after a backoff with full jitter; a session
// that stayed up for healthy_after starts the backoff afresh.
#pragma once

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "supervisor/base/lifetime.h"
#include "supervisor/config/config.h"
#include "supervisor/config/address.h"

namespace baton {

enum class TunnelState { kIdle, kConnecting, kHandshake, kAuth, kForward, kUp, kBackoff, kStopped };
const char* TunnelStateName(TunnelState s);

// The delay before reconnect attempt `failures` (1, 2, ...): uniform in
// [0, min(max, base * 2^(failures-1))]. `unit` is a draw from [0, 1).
Duration TunnelBackoff(Duration base, Duration max, int failures, double unit);

class TunnelSession {
 public:
  // `event(what, message)`: the session came up, went down, or failed to come up.
  enum class Event { kUp, kDown, kError };
  using EventFn = std::function<void(Event what, const std::string& message)>;

  TunnelSession(boost::asio::io_context& io, const TunnelConfig& config, size_t edge, SocketAddress target,
                EventFn event);
  ~TunnelSession();
  TunnelSession(const TunnelSession&) = delete;
  TunnelSession& operator=(const TunnelSession&) = delete;

  void Start();
  // Cancels the forward (the edge stops accepting), lets open channels finish within
  // `grace`, then disconnects; `done` once closed.
  void Shutdown(Duration grace, std::function<void()> done);

  std::string edge() const;
  // State and counters, as status and metrics show them.
  nlohmann::json Describe() const;

 private:
  struct Impl;
  struct Channel;

  void Connect();
  void Step();
  void WaitSession();
  void AckNow();  // acknowledges the edge's data at once (TCP_QUICKACK)
  void Pump();
  void AcceptChannels();
  void PumpChannel(Channel& ch);
  bool EdgeToSocket(Channel& ch);
  bool SocketToEdge(Channel& ch);
  void WaitChannel(Channel& ch, bool for_write);
  void CloseChannel(Channel& ch);
  std::string ProxyHeader(const std::string& client, int client_port) const;
  void Fail(const std::string& why);
  void Keepalive();
  void CheckShutdown();
  Channel* FindChannel(uint64_t id);

  boost::asio::io_context& io_;
  const TunnelConfig config_;
  size_t edge_;
  SocketAddress target_;
  EventFn event_;
  std::unique_ptr<Impl> impl_;
  TunnelState state_ = TunnelState::kIdle;
  int failures_ = 0;
  uint64_t connects_ = 0, channels_total_ = 0, bytes_in_ = 0, bytes_out_ = 0;
  double up_since_ = 0;
  std::string last_error_;
  std::function<void()> shutdown_done_;
  std::mt19937_64 random_;
  Lifetime alive_;
};

}  // namespace baton
