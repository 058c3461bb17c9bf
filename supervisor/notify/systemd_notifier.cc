#include "supervisor/notify/systemd_notifier.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "supervisor/base/log.h"
#include "supervisor/base/number.h"

namespace baton {

std::unique_ptr<SystemdNotifier> SystemdNotifier::FromEnvironment() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || (path[0] != '/' && path[0] != '@') || std::strlen(path) >= sizeof(sockaddr_un::sun_path)) return nullptr;
  auto n = std::unique_ptr<SystemdNotifier>(new SystemdNotifier());
  n->path_ = path;
  n->fd_.Reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  if (!usec) return n;
  // systemd's own bound for a watchdog interval is far below this: a day, in microseconds.
  auto interval = ParseInteger<long long>(usec, "WATCHDOG_USEC", 1, 86'400'000'000LL);
  auto for_pid = pid ? ParseInteger<pid_t>(pid, "WATCHDOG_PID", 1) : Result<pid_t>(::getpid());
  if (!interval.ok() || !for_pid.ok()) {
    spdlog::warn("ignoring the watchdog systemd asked for: {}",
                 (interval.ok() ? for_pid.status() : interval.status()).message());
    return n;
  }
  if (*for_pid == ::getpid())
    n->watchdog_ = std::chrono::duration_cast<Duration>(std::chrono::microseconds(*interval / 2));
  return n;
}

void SystemdNotifier::Send(const std::string& message) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
  if (::sendto(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len) < 0)
    spdlog::debug("sd_notify to {}: {}", path_, std::strerror(errno));
}

}  // namespace baton
