#include "supervisor/sockets/inherited_sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>

#include "supervisor/base/log.h"
#include "supervisor/base/number.h"

namespace baton {
namespace {

std::map<std::string, UniqueFd> ReadEnvironment() {
  std::map<std::string, UniqueFd> out;
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  std::string names = std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : "";
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!pid || !fds) return out;
  auto for_pid = ParseInteger<pid_t>(pid, "LISTEN_PID", 1);
  if (!for_pid.ok() || *for_pid != ::getpid()) return out;
  // Descriptors 3 .. 3+n-1 must exist below our own limit; anything larger is not systemd's.
  auto count = ParseInteger<int>(fds, "LISTEN_FDS", 0, 4096);
  if (!count.ok()) {
    spdlog::warn("ignoring the sockets systemd passed: {}", count.status().message());
    return out;
  }
  for (int i = 0; i < *count; ++i) {
    size_t colon = names.find(':');
    std::string name = names.substr(0, colon);
    names = colon == std::string::npos ? "" : names.substr(colon + 1);
    int fd = 3 + i;
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    // A name passed twice (two entries in the store) keeps the first; the other closes.
    out.emplace(name.empty() ? "unknown" : name, UniqueFd(fd));
  }
  return out;
}

std::map<std::string, UniqueFd>& Inherited() {
  static std::map<std::string, UniqueFd> sockets = ReadEnvironment();
  return sockets;
}

}  // namespace

UniqueFd TakeInheritedSocket(const std::string& name) {
  auto& sockets = Inherited();
  auto it = sockets.find(name);
  if (it == sockets.end()) return UniqueFd();
  UniqueFd fd = std::move(it->second);
  sockets.erase(it);
  return fd;
}

std::vector<std::pair<std::string, UniqueFd>> TakeInheritedSockets(const std::string& prefix) {
  std::vector<std::pair<std::string, UniqueFd>> out;
  auto& sockets = Inherited();
  for (auto it = sockets.lower_bound(prefix); it != sockets.end() && it->first.rfind(prefix, 0) == 0;) {
    out.emplace_back(it->first, std::move(it->second));
    it = sockets.erase(it);
  }
  return out;
}

void IgnoreInheritedSockets() {
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
}

Result<SocketAddress> BoundAddress(int fd) {
  sockaddr_storage actual{};
  socklen_t len = sizeof actual;
  int type = 0;
  socklen_t tlen = sizeof type;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&actual), &len) != 0 ||
      ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0)
    return Status::FromErrno("inspect the socket", errno);
  char host[INET6_ADDRSTRLEN] = "";
  if (actual.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(actual);
    ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    return SocketAddress{type == SOCK_DGRAM ? SocketAddress::Kind::kUdp : SocketAddress::Kind::kTcp, host,
                         ntohs(in.sin_port), ""};
  }
  if (actual.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(actual);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    return SocketAddress{type == SOCK_DGRAM ? SocketAddress::Kind::kUdp : SocketAddress::Kind::kTcp6, host,
                         ntohs(in6.sin6_port), ""};
  }
  if (actual.ss_family == AF_UNIX)
    return SocketAddress{SocketAddress::Kind::kUnix, "", 0, reinterpret_cast<const sockaddr_un&>(actual).sun_path};
  return Status::FailedPrecondition("a socket of an unknown family");
}

}  // namespace baton
