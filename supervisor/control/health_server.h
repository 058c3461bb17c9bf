// The health endpoint's socket: plain HTTP/1.1 on TCP (Boost.Beast), one request per
// connection, read within a deadline, answered from AnswerHealth (control/health.h) and
// closed. It serves nothing else and changes nothing. Loop thread only.
#pragma once

#include <functional>
#include <memory>

#include "supervisor/base/status.h"
#include "supervisor/config/address.h"
#include "supervisor/control/health.h"

namespace boost::asio {
class io_context;
}

namespace baton {

class HealthServer {
 public:
  using View = std::function<HealthView()>;
  // Binds `address` (tcp:// or tcp6://), or serves `inherited_fd` when it is not -1 (a
  // self-upgrade carried it over).
  static Result<std::unique_ptr<HealthServer>> Create(boost::asio::io_context& io, const SocketAddress& address,
                                                      View view, int inherited_fd = -1);
  int fd() const;
  // A self-upgrade stops accepting (new connections wait in the listen queue, which the
  // next program serves) and waits until no connection is open: an accepted one would be
  // reset by the exec. Accepting starts again if the upgrade does not happen.
  void StopAccepting();
  void StartAccepting();
  int clients() const;
  ~HealthServer();

  static constexpr int kMaxClients = 64;  // more at once are closed unanswered

 private:
  struct Impl;
  explicit HealthServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace baton
