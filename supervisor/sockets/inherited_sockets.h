// The sockets batond's own parent passed it at start, as systemd does (LISTEN_PID,
// LISTEN_FDS, LISTEN_FDNAMES): those of socket units, which systemd:NAME listeners name,
// and those systemd kept for batond in its file descriptor store (kept_sockets.h). Read
// once, at the first call, which also clears LISTEN_* from batond's environment so that a
// self-upgrade's exec does not read them again; each socket is taken at most once.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "supervisor/base/status.h"
#include "supervisor/base/unique_fd.h"
#include "supervisor/config/address.h"

namespace baton {

// The socket passed under `name`; empty when there is none (or it was taken).
UniqueFd TakeInheritedSocket(const std::string& name);
// Every socket passed under a name that begins with `prefix`, by name.
std::vector<std::pair<std::string, UniqueFd>> TakeInheritedSockets(const std::string& prefix);
// A program that resumes from carried state has its sockets already: it must not read
// LISTEN_* (left by a program that did not clear them) as sockets passed to it.
void IgnoreInheritedSockets();

// What a socket is bound to, read from the socket: tcp, tcp6 or udp with host and port,
// or unix with its path.
Result<SocketAddress> BoundAddress(int fd);

}  // namespace baton
