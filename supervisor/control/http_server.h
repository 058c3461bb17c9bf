// The control socket: HTTP/1.1 (Boost.Beast) on a Unix socket created mode 0600. Each
// connection's peer is checked with SO_PEERCRED (root and batond's own uid are allowed),
// one request is read (bounded header and body, with a read deadline), handed to
// ControlApi, and the connection closes after the answer. Loop thread only.
#pragma once

#include <memory>
#include <string>

#include "supervisor/base/status.h"
#include "supervisor/control/api.h"

namespace boost::asio { class io_context; }

namespace baton {

class ControlServer {
 public:
  // Fails if another process is serving on `path`; a stale socket file is replaced.
  static Result<std::unique_ptr<ControlServer>> Create(boost::asio::io_context& io, const std::string& path,
                                                       ControlApi& api);
  ~ControlServer();

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace baton
