#include "supervisor/proxy/proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "supervisor/base/log.h"
#include "supervisor/proxy/proxy_connection.h"
#include "supervisor/proxy/proxy_protocol.h"

namespace baton {

namespace asio = boost::asio;

namespace {
constexpr size_t kSpliceChunk = 1 << 20;  // at most what one splice into an empty pipe moves
constexpr size_t kSparePipes = 256;       // kept for new connections: saves pipe2 and close calls
// An accept that failed for want of descriptors (EMFILE and the like) is tried again after:
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

void SetNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on unix sockets
}

// Close with a reset (RST) instead of an orderly FIN.
void ArmReset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}
}  // namespace

ProxyListener::ProxyListener(asio::io_context& io, std::string name, int listener_fd, ProxyConfig config, Router router,
                             ChangedFn changed)
    : io_(io),
      name_(std::move(name)),
      config_(config),
      router_(std::move(router)),
      changed_(std::move(changed)),
      edges_(io, [this](uint64_t key, uint32_t events) { OnReady(key, events); }),
      accept_retry_(io) {
  listener_.Reset(::fcntl(listener_fd, F_DUPFD_CLOEXEC, 3));
  Status watched =
      listener_ ? edges_.Add(listener_.get(), kListenerKey) : Status::FromErrno("duplicate the listener", errno);
  if (!watched.ok()) {
    spdlog::error("proxy {}: cannot accept: {}", name_, watched.message());
    accepting_ = false;
    return;
  }
  original_flags_ = ::fcntl(listener_.get(), F_GETFL);
  ::fcntl(listener_.get(), F_SETFL, original_flags_ | O_NONBLOCK);
  AcceptSome();
}

ProxyListener::~ProxyListener() {
  alive_.End();
  connections_.clear();
}

size_t ProxyListener::Connections(int64_t generation, bool unanswered_only) const {
  const auto& counts = unanswered_only ? unanswered_ : per_generation_;
  auto it = counts.find(generation);
  return it == counts.end() ? 0 : it->second;
}

ProxyGenerationStats ProxyListener::Stats(int64_t generation) const {
  auto it = stats_.find(generation);
  return it == stats_.end() ? ProxyGenerationStats{} : it->second;
}

namespace {
// Decrements a per-generation count, erasing it at zero.
void Decrement(std::map<int64_t, size_t>& counts, int64_t generation) {
  auto it = counts.find(generation);
  if (it != counts.end() && --it->second == 0) counts.erase(it);
}
}  // namespace

// Deferred to the loop: callers are in the middle of a handover step, and accepting may
// close connections, whose drain notice calls back into the service.
void ProxyListener::Resume() {
  if (!paused_ || !accepting_ || resume_posted_) return;
  resume_posted_ = true;
  auto alive = alive_.token();
  asio::post(io_, [this, alive] {
    if (!alive) return;
    resume_posted_ = false;
    if (!paused_ || !accepting_) return;
    paused_ = false;
    AcceptSome();
  });
}

void ProxyListener::StopAccepting() {
  if (!accepting_) return;
  accepting_ = false;
  accept_retry_.cancel();
  if (!listener_) return;
  ::fcntl(listener_.get(), F_SETFL, original_flags_);
  edges_.Remove(listener_.get());  // the caller's descriptor keeps the file open
  listener_.Reset();
}

void ProxyListener::OnReady(uint64_t key, uint32_t events) {
  if (key == kListenerKey) {
    if (accepting_ && !paused_) AcceptSome();
    return;
  }
  Connection* c = Find(key / 2);
  if (!c) return;  // closed earlier: the last events of its sockets
  const bool backend = key == BackendKey(c->id);
  if (backend && !c->connected) return OnConnectDone(*c, events);
  const bool readable = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  const bool writable = events & (EPOLLOUT | EPOLLHUP | EPOLLERR);
  const uint64_t id = c->id;
  Flow& reading = backend ? c->down : c->up;  // the flow that reads from this socket
  if (readable && reading.waiting == Flow::Wait::kRead) Pump(*c, reading);
  if (!(c = Find(id))) return;
  Flow& writing = backend ? c->up : c->down;  // and the one that writes to it
  if (writable && writing.waiting == Flow::Wait::kWrite) Pump(*c, writing);
}

// Accepts until the queue is empty (the set is edge-triggered), or pauses with
// connections left in the queue when no backend is routable or the limit is reached.
void ProxyListener::AcceptSome() {
  while (accepting_ && !paused_) {
    if (counters_.active >= static_cast<uint64_t>(config_.max_connections)) {
      paused_ = true;
      return;
    }
    if (!router_(0, false)) {
      paused_ = true;
      return;
    }
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (WouldBlock(errno)) return;  // the set reports the next connection
      // EMFILE and the like: the queue is not empty, so no new edge may come. Try again
      // in a while; the clients wait in the queue meanwhile.
      spdlog::warn("proxy {}: accept: {}", name_, std::strerror(errno));
      accept_retry_.expires_after(kAcceptRetry);
      accept_retry_.async_wait([this, alive = alive_.token()](const boost::system::error_code& ec) {
        if (alive && !ec && accepting_ && !paused_) AcceptSome();
      });
      return;
    }
    std::optional<ProxyRoute> route = router_(0, true);  // the same loop turn: still there
    if (!route) {
      ::close(fd);
      continue;
    }
    if (Status s = edges_.Add(fd, ClientKey(next_id_)); !s.ok()) {
      spdlog::warn("proxy {}: {}; closing the client connection", name_, s.message());
      ::close(fd);
      continue;
    }
    auto c = std::make_unique<Connection>(io_, fd);
    c->id = next_id_++;
    c->route = *route;
    c->client_addr = peer;
    if (config_.proxy_protocol) {
      len = sizeof c->local_addr;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&c->local_addr), &len);
    }
    SetNoDelay(fd);
    counters_.active++;
    counters_.total++;
    per_generation_[route->generation]++;
    unanswered_[route->generation]++;
    stats_[route->generation].connections++;
    Connection& ref = *c;
    connections_.emplace(c->id, std::move(c));
    Connect(ref);
  }
}

ProxyListener::Connection* ProxyListener::Find(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

void ProxyListener::Connect(Connection& c) {
  c.attempts++;
  c.backend.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!c.backend) return RetryOrFail(c.id, std::string("socket: ") + std::strerror(errno));
  if (Status s = edges_.Add(c.backend.get(), BackendKey(c.id)); !s.ok()) return RetryOrFail(c.id, s.message());
  const int fd = c.backend.get();
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(c.route.port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) return OnConnected(c.id);
  if (errno != EINPROGRESS) return RetryOrFail(c.id, std::strerror(errno));
  // On loopback the handshake has usually finished inside connect(): one poll saves a
  // turn of the loop and a getsockopt on the way of every request.
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, 0) == 1 && p.revents == POLLOUT) return OnConnected(c.id);
  // Else the set reports the backend writable (connected) or in error (OnConnectDone).
  auto alive = alive_.token();
  uint64_t id = c.id;
  c.timer.expires_after(config_.connect_timeout);
  c.timer.async_wait([this, alive, id](const boost::system::error_code& ec) {
    if (!alive || ec) return;
    Connection* c = Find(id);
    if (c && !c->connected) RetryOrFail(id, "connect timed out");
  });
}

// The backend socket, connecting, became writable or failed. An event left from an
// earlier attempt's socket finds none open, or this one still connecting (no error, not
// writable).
void ProxyListener::OnConnectDone(Connection& c, uint32_t events) {
  if (!c.backend || !(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(c.backend.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return RetryOrFail(c.id, std::strerror(err));
  pollfd p{c.backend.get(), POLLOUT, 0};
  if (::poll(&p, 1, 0) == 1 && p.revents == POLLOUT) OnConnected(c.id);
}

void ProxyListener::RetryOrFail(uint64_t id, const std::string& why) {
  Connection* c = Find(id);
  if (!c) return;
  c->backend.Reset();
  c->timer.cancel();
  if (c->attempts > config_.connect_retries) {
    counters_.errors++;
    stats_[c->route.generation].failures++;
    spdlog::warn("proxy {}: generation {} port {}: {} after {} attempt(s); closing the client connection", name_,
                 c->route.generation, c->route.port, why, c->attempts);
    return Close(id, true, false);
  }
  counters_.retries++;
  // Against the same generation: another of its workers, or the same one again.
  if (auto route = router_(c->route.generation, true)) c->route.port = route->port;
  auto alive = alive_.token();
  c->timer.expires_after(std::chrono::milliseconds(25 * c->attempts));
  c->timer.async_wait([this, alive, id](const boost::system::error_code& ec) {
    if (!alive || ec) return;
    if (Connection* c = Find(id)) Connect(*c);
  });
}

void ProxyListener::OnConnected(uint64_t id) {
  Connection* c = Find(id);
  if (!c) return;
  c->connected = true;
  c->timer.cancel();
  int fd = c->backend.get();
  SetNoDelay(fd);
  if (config_.proxy_protocol) {
    // The first bytes on a fresh connection: the socket buffer is empty, so all of it fits.
    std::string header = ProxyV2Header(c->client_addr, c->local_addr);
    if (::send(fd, header.data(), header.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(header.size()))
      return RetryOrFail(id, std::string("sending the PROXY header: ") + std::strerror(errno));
  }
  for (Flow* f : {&c->up, &c->down}) {
    if (!spare_pipes_.empty()) {
      f->pipe_read = std::move(spare_pipes_.back().first);
      f->pipe_write = std::move(spare_pipes_.back().second);
      spare_pipes_.pop_back();
      continue;
    }
    int p[2];
    if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
      spdlog::warn("proxy {}: pipe: {}", name_, std::strerror(errno));
      counters_.errors++;
      return Close(id, true, true);
    }
    f->pipe_read.Reset(p[0]);
    f->pipe_write.Reset(p[1]);
  }
  StartFlows(*c);
}

// Both ways, from where they are: the set reported what it had before they waited.
void ProxyListener::StartFlows(Connection& c) {
  c.up.from = &c.client;
  c.up.to = &c.backend;
  c.up.upstream = true;
  c.down.from = &c.backend;
  c.down.to = &c.client;
  ArmIdle(c);
  uint64_t id = c.id;
  Pump(c, c.up);
  if (Connection* again = Find(id)) Pump(*again, again->down);
}

// Moves bytes one way until the source has nothing more or the destination is full,
// then waits for whichever it needs (OnReady resumes it). Passes on FIN (half-close) and
// resets.
void ProxyListener::Pump(Connection& c, Flow& f) {
  uint64_t id = c.id;
  f.waiting = Flow::Wait::kNone;
  while (!f.done) {
    if (f.in_pipe > 0) {
      ssize_t n =
          ::splice(f.pipe_read.get(), nullptr, f.to->get(), nullptr, f.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        f.in_pipe -= static_cast<size_t>(n);
        (f.upstream ? counters_.bytes_in : counters_.bytes_out) += static_cast<uint64_t>(n);
        c.last_activity = SteadyClock::now();
        if (!f.upstream && !c.answered) {
          c.answered = true;
          Decrement(unanswered_, c.route.generation);
          if (changed_) changed_(c.route.generation);
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && WouldBlock(errno)) {
        f.waiting = Flow::Wait::kWrite;
        return;
      }
      // The destination is gone (EPIPE, ECONNRESET): tell the source the same way.
      counters_.resets++;
      if (f.upstream) stats_[c.route.generation].resets++;
      return f.upstream ? Close(id, true, false) : Close(id, false, true);
    }
    if (f.eof) {
      // Pass the half-close on, unless the other way is finished too: closing says it all.
      const Flow& other = f.upstream ? c.down : c.up;
      if (!other.done) ::shutdown(f.to->get(), SHUT_WR);
      f.done = true;
      break;
    }
    ssize_t n =
        ::splice(f.from->get(), nullptr, f.pipe_write.get(), nullptr, kSpliceChunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      f.in_pipe = static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      f.eof = true;
      // A worker that closes without a byte of answer dropped the request, as a reset does.
      if (!f.upstream && !c.answered) stats_[c.route.generation].resets++;
      continue;
    }
    if (errno == EINTR) continue;
    if (WouldBlock(errno)) {
      f.waiting = Flow::Wait::kRead;
      return;
    }
    counters_.resets++;  // the source reset the connection: pass the reset on
    if (!f.upstream) stats_[c.route.generation].resets++;
    return f.upstream ? Close(id, false, true) : Close(id, true, false);
  }
  if (c.up.done && c.down.done) Close(id, false, false);
}

void ProxyListener::ArmIdle(Connection& c) {
  auto due = c.last_activity + config_.idle_timeout;
  c.timer.expires_at(due);
  auto alive = alive_.token();
  uint64_t id = c.id;
  c.timer.async_wait([this, alive, id](const boost::system::error_code& ec) {
    if (!alive || ec) return;
    Connection* c = Find(id);
    if (!c) return;
    if (SteadyClock::now() - c->last_activity < config_.idle_timeout) return ArmIdle(*c);
    counters_.idle_closed++;
    Close(id, false, false);
  });
}

void ProxyListener::Close(uint64_t id, bool reset_client, bool reset_backend) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  if (reset_client) ArmReset(c.client.get());
  if (reset_backend && c.backend) ArmReset(c.backend.get());
  int64_t generation = c.route.generation;
  if (!c.answered) Decrement(unanswered_, generation);
  for (Flow* f : {&c.up, &c.down})
    if (f->pipe_read && f->in_pipe == 0 && spare_pipes_.size() < kSparePipes)
      spare_pipes_.emplace_back(std::move(f->pipe_read), std::move(f->pipe_write));
  connections_.erase(it);  // closes both sockets, which leave the set, and the pipes
  counters_.active--;
  Decrement(per_generation_, generation);
  if (paused_ && counters_.active < static_cast<uint64_t>(config_.max_connections)) Resume();
  if (changed_) changed_(generation);
}

}  // namespace baton
