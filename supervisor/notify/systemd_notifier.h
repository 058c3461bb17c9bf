// batond's own sd_notify messages to whatever started it (systemd with Type=notify), when
// NOTIFY_SOCKET is set: READY=1, STATUS=, RELOADING=1, STOPPING=1, WATCHDOG=1, and
// FDSTORE=1 with a descriptor attached (sockets/kept_sockets.h).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "supervisor/base/clock.h"
#include "supervisor/base/unique_fd.h"

namespace baton {

class SystemdNotifier {
 public:
  // Null when NOTIFY_SOCKET is not set (or names nothing usable).
  static std::unique_ptr<SystemdNotifier> FromEnvironment();
  // With `fd` >= 0, the descriptor goes along (SCM_RIGHTS).
  void Send(const std::string& message, int fd = -1);
  // How often to send WATCHDOG=1 (half of WATCHDOG_USEC), when the watchdog is for us.
  std::optional<Duration> watchdog_interval() const { return watchdog_; }

 private:
  std::string path_;  // '@' first for an abstract socket
  UniqueFd fd_;
  std::optional<Duration> watchdog_;
};

}  // namespace baton
