// The proxy's sockets in an epoll set of their own, which the loop watches as a single
// descriptor. Each socket is registered once, edge-triggered, for reading and writing: a
// socket waited on through the loop's reactor cost an epoll_ctl at every wait (the
// reactor re-arms), another to remove it and an ioctl at its close, five or six calls of
// about twenty-four per proxied connection and two of eight per keep-alive request.
//
// Edge-triggered: `ready` hears of a socket when it becomes readable or writable, once,
// so its user reads or writes until EAGAIN before waiting again. A closed socket leaves
// the set by itself, unless its file is still open under another descriptor (Remove).
// Each registration carries a key of the user's choosing, which may outlive what it named:
// the user looks it up, and an event for a key it no longer knows is stale.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <functional>

#include "supervisor/base/lifetime.h"
#include "supervisor/base/status.h"

namespace baton {

class EdgeSet {
 public:
  // `events` is the epoll mask: EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR.
  using ReadyFn = std::function<void(uint64_t key, uint32_t events)>;

  EdgeSet(boost::asio::io_context& io, ReadyFn ready);  // ok() says whether it could be made
  ~EdgeSet();
  EdgeSet(const EdgeSet&) = delete;
  EdgeSet& operator=(const EdgeSet&) = delete;

  bool ok() const { return epoll_.is_open(); }
  Status Add(int fd, uint64_t key);  // says why the set could not be made, if it could not
  // Only for a descriptor whose file stays open elsewhere once it is closed.
  void Remove(int fd);

 private:
  void Wait();
  void Dispatch();

  mutable boost::asio::posix::stream_descriptor epoll_;  // native_handle() is not const
  ReadyFn ready_;
  int create_error_ = 0;  // errno of epoll_create1 when it failed
  Lifetime alive_;
};

}  // namespace baton
