// The control socket: HTTP/1.1 on a Unix socket created mode 0600 (0660 with a group).
// Each connection's peer is checked with SO_PEERCRED against the allowed uids and gids;
// its one request (control/http_session) goes to ControlApi, or is answered 403. Near the
// open-file limit, new clients get 503 so that a handover still finds descriptors. Loop
// thread only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <vector>
#include <string>

#include "supervisor/base/status.h"
#include "supervisor/control/api.h"

namespace boost::asio {
class io_context;
}

namespace baton {

struct ControlAccess {
  std::vector<unsigned> uids;     // allowed peer uids (root is always allowed)
  std::vector<unsigned> gids;     // allowed peer gids
  std::optional<unsigned> group;  // socket file group; makes the socket 0660
  std::chrono::milliseconds read_timeout{10000};
};

class ControlServer {
 public:
  // Fails if another process is serving on `path`; a stale socket file is replaced.
  // With `inherited_fd`, serves that socket (listening on `path`) instead.
  static Result<std::unique_ptr<ControlServer>> Create(boost::asio::io_context& io, const std::string& path,
                                                       ControlAccess access, ControlApi& api, int inherited_fd = -1);
  uint64_t refused() const;
  // Clients answered 503 because fewer than kControlFdReserve descriptors were left.
  uint64_t shed() const;
  int fd() const;
  ~ControlServer();

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace baton
