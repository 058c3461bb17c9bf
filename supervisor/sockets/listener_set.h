// Listening sockets that batond binds once and holds across every generation. Bound
// sockets are CLOEXEC in batond; the launcher places them at fds 3, 4, ... in a worker.
#pragma once

#include <string>
#include <vector>

#include "supervisor/base/unique_fd.h"
#include "supervisor/config/config.h"

namespace baton {

struct BoundListener {
  std::string name;
  SocketAddress address;  // as bound: port 0 replaced by the kernel's choice
  UniqueFd fd;
  bool from_systemd = false;  // adopted (systemd:NAME): systemd owns its unix path
};

// Binds one listener (SO_REUSEADDR, SO_REUSEPORT when kernel-steered, IPV6_V6ONLY for
// tcp6, listen(backlog) for streams).
// A stale unix socket file is replaced; any other file at that path is an error. A
// systemd:NAME listener is taken from the sockets systemd passed to batond instead.
Result<BoundListener> BindListener(const ListenerConfig& config);

// Environment for a worker given its listeners in fd order (fd 3 first): LISTEN_FDS,
// LISTEN_FDNAMES, EINHORN_FD_COUNT, EINHORN_FD_n, NGINX. LISTEN_PID is set by the launcher
// in the child, since only the child knows its pid. Empty when there are no listeners.
std::vector<std::pair<std::string, std::string>> ListenerEnvironment(const std::vector<std::string>& names);

}  // namespace baton
