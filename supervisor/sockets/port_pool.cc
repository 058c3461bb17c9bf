#include "supervisor/sockets/port_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/base/unique_fd.h"

namespace baton {

bool LoopbackPortFree(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

PortPool::PortPool(PortRange range, uint32_t start) : range_(range), cursor_(start) {}

void PortPool::SetRange(PortRange range) { range_ = range; }

Result<int> PortPool::Next() {
  for (int i = 0; i < kTries; ++i) {
    int port = range_.first + static_cast<int>(cursor_++ % static_cast<uint32_t>(range_.size()));
    if (LoopbackPortFree(port)) return port;
  }
  return Status::Failed("no free port in daemon.port_range " + range_.ToString() + " after " + std::to_string(kTries) +
                        " tries");
}

}  // namespace baton
