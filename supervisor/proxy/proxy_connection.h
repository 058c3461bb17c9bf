// A proxied connection's parts, shared by the proxy's data path (proxy.cc) and its
// self-upgrade export and adoption (proxy_carry.cc). Internal to proxy/.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

#include "supervisor/base/unique_fd.h"
#include "supervisor/proxy/proxy.h"

namespace baton {

using SteadyClock = std::chrono::steady_clock;

// One direction of a connection: bytes read from `from` wait in the pipe until `to`
// takes them. A pipe is either empty or being drained, never read into while full.
struct ProxyListener::Flow {
  enum class Wait { kNone, kRead, kWrite };  // for `from` to be readable, or `to` writable
  UniqueFd* from = nullptr;
  UniqueFd* to = nullptr;
  UniqueFd pipe_read, pipe_write;
  Wait waiting = Wait::kNone;
  size_t in_pipe = 0;
  bool eof = false;       // `from` sent FIN
  bool done = false;      // FIN passed on to `to`
  bool upstream = false;  // client -> backend
};

struct ProxyListener::Connection {
  Connection(boost::asio::io_context& io, int client_fd) : client(client_fd), timer(io) {}
  uint64_t id = 0;
  ProxyRoute route;
  int attempts = 0;
  sockaddr_storage client_addr{}, local_addr{};
  UniqueFd client, backend;         // in the listener's EdgeSet, keyed ClientKey(id) and BackendKey(id)
  boost::asio::steady_timer timer;  // connect timeout, retry delay, then idle timeout
  Flow up, down;
  bool connected = false;
  bool answered = false;  // a byte came from the backend: it has accepted the connection
  SteadyClock::time_point last_activity = SteadyClock::now();
};

}  // namespace baton
