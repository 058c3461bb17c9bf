#include "supervisor/notify/systemd_notifier.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
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

void SystemdNotifier::Send(const std::string& message, int fd) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
  iovec iov{const_cast<char*>(message.data()), message.size()};
  msghdr msg{};
  msg.msg_name = &addr;
  msg.msg_namelen = len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL) < 0) {
    // A descriptor that did not reach the store is worth a warning: a crash would lose it.
    std::string line = message;
    std::replace(line.begin(), line.end(), '\n', ' ');
    if (fd >= 0)
      spdlog::warn("sd_notify to {}: {}: {}", path_, line, std::strerror(errno));
    else
      spdlog::debug("sd_notify to {}: {}", path_, std::strerror(errno));
  }
}

}  // namespace baton
