// A tunnel session's private parts, shared by the session (tunnel.cc) and its channels
// (tunnel_channels.cc). Internal to tunnel/.
#pragma once

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <map>
#include <memory>
#include <string>

#include "supervisor/tunnel/libssh.h"
#include "supervisor/tunnel/tunnel.h"

namespace baton {

using Descriptor = boost::asio::posix::stream_descriptor;

inline constexpr size_t kTunnelChunk = 64 * 1024;  // bytes moved per read, each way

inline bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// A non-blocking, close-on-exec connect to `a` (in progress or done); -1 on error.
int ConnectTo(const SocketAddress& a);

struct TunnelSession::Channel {
  Channel(boost::asio::io_context& io, int fd) : sock(io, fd) {}
  ~Channel() {
    if (channel) {
      Ssh().ssh_channel_close(channel);
      Ssh().ssh_channel_free(channel);
    }
  }
  uint64_t id = 0;
  ssh_channel channel = nullptr;
  Descriptor sock;
  bool connected = false;
  std::string to_sock;          // from the channel, not yet written to the socket
  bool eof_to_channel = false;  // the socket ended: EOF sent on the channel
  bool eof_to_sock = false;     // the channel ended: the socket's write side shut
  bool waiting_read = false, waiting_write = false;
};

struct TunnelSession::Impl {
  explicit Impl(boost::asio::io_context& io) : wait(io), timer(io), keepalive(io) {}
  ~Impl() { Close(); }
  void Close() {
    channels.clear();
    boost::system::error_code ignored;
    wait.close(ignored);
    if (session) {
      Ssh().ssh_disconnect(session);  // closes the socket it was given
      Ssh().ssh_free(session);
      session = nullptr;
    } else if (fd >= 0) {
      ::close(fd);
    }
    fd = -1;
    if (key) {
      Ssh().ssh_key_free(key);
      key = nullptr;
    }
    timer.cancel();
    keepalive.cancel();
  }
  int fd = -1;      // the TCP socket to the edge (libssh's once the session has it)
  Descriptor wait;  // a duplicate of fd, to wait on it in the loop
  bool waiting_read = false, waiting_write = false;
  ssh_session session = nullptr;
  ssh_key key = nullptr;
  boost::asio::steady_timer timer;  // connect timeout, backoff, shutdown grace
  boost::asio::steady_timer keepalive;
  std::map<uint64_t, std::unique_ptr<Channel>> channels;
  uint64_t next_channel = 1;
  int cancel_results = 0;  // answers seen while cancelling the forward at shutdown
};

}  // namespace baton
