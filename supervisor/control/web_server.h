// The web dashboard's socket: HTTP/1.1 on TCP (`[daemon] web`). Its pages and scripts are
// built into batond (control/web/); its API is the control API's, behind the bearer token
// and the limits of web_access.h. Loop thread only.
#pragma once

#include <memory>
#include <string>

#include "supervisor/base/status.h"
#include "supervisor/config/address.h"
#include "supervisor/control/api.h"

namespace boost::asio {
class io_context;
}

namespace baton {

class WebServer {
 public:
  struct Options {
    SocketAddress address;
    std::string token;
    bool read_only = false;
    std::chrono::milliseconds read_timeout{10000};
  };
  // Binds `options.address`, or serves `inherited_fd` when it is not -1 (a self-upgrade
  // carried it over; its open connections were not: a page reconnects).
  static Result<std::unique_ptr<WebServer>> Create(boost::asio::io_context& io, Options options, ControlApi& api,
                                                   int inherited_fd = -1);
  int fd() const;
  // Where the dashboard is, with the token (in the fragment: browsers do not send it).
  std::string Url() const;
  bool read_only() const;
  ~WebServer();

  static constexpr int kMaxClients = 64;  // more at once are closed unanswered

 private:
  struct Impl;
  explicit WebServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace baton
