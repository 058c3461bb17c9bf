// The NOTIFY_SOCKET server: a Unix datagram socket that workers (and their descendants,
// e.g. systemd-notify) send sd_notify messages to. The sender's pid comes from kernel
// credentials (SO_PASSCRED), never from the message. Passed fds are closed at once, which
// also releases systemd-notify's BARRIER=1 wait. Loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "supervisor/base/status.h"
#include "supervisor/notify/notify_message.h"

namespace boost::asio {
class io_context;
}

namespace baton {

class NotifyServer {
 public:
  using Handler = std::function<void(int sender_pid, const NotifyMessage&)>;
  // Binds `path`, or serves `inherited_fd` (already bound there, e.g. by the program
  // batond was before a self-upgrade) when it is not -1.
  static Result<std::unique_ptr<NotifyServer>> Create(boost::asio::io_context& io, const std::string& path,
                                                      Handler handler, int inherited_fd = -1);
  ~NotifyServer();
  const std::string& path() const { return path_; }
  int fd() const;
  uint64_t received() const { return received_; }

 private:
  struct Impl;
  NotifyServer(std::unique_ptr<Impl> impl, std::string path);
  std::unique_ptr<Impl> impl_;
  std::string path_;
  uint64_t received_ = 0;
};

}  // namespace baton
