#include "supervisor/sockets/listener_set.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <map>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "supervisor/base/log.h"
#include "supervisor/base/number.h"

namespace baton {
namespace {

socklen_t FillSockaddr(const SocketAddress& a, sockaddr_storage& ss) {
  std::memset(&ss, 0, sizeof ss);
  if (a.kind == SocketAddress::Kind::kUnix) {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, a.path.data(), a.path.size());
    return sizeof(sockaddr_un);
  }
  in_addr v4;
  if (inet_pton(AF_INET, a.host.c_str(), &v4) == 1) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_addr = v4;
    in->sin_port = htons(a.port);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  in6->sin6_family = AF_INET6;
  inet_pton(AF_INET6, a.host.c_str(), &in6->sin6_addr);
  in6->sin6_port = htons(a.port);
  return sizeof(sockaddr_in6);
}

}  // namespace

namespace {

// The sockets systemd passed to batond (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), by name;
// read once, each taken at most once.
std::map<std::string, int>& InheritedSockets() {
  static std::map<std::string, int> sockets = [] {
    std::map<std::string, int> out;
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    if (!pid || !fds) return out;
    auto for_pid = ParseInteger<pid_t>(pid, "LISTEN_PID", 1);
    if (!for_pid.ok() || *for_pid != ::getpid()) return out;
    // Descriptors 3 .. 3+n-1 must exist below our own limit; anything larger is not systemd's.
    auto count = ParseInteger<int>(fds, "LISTEN_FDS", 0, 4096);
    if (!count.ok()) {
      spdlog::warn("ignoring the sockets systemd passed: {}", count.status().message());
      return out;
    }
    std::string names = std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : "";
    int n = *count;
    for (int i = 0; i < n; ++i) {
      std::string name = names.substr(0, names.find(':'));
      names = names.find(':') == std::string::npos ? "" : names.substr(names.find(':') + 1);
      out[name.empty() ? "unknown" : name] = 3 + i;
      ::fcntl(3 + i, F_SETFD, FD_CLOEXEC);
    }
    return out;
  }();
  return sockets;
}

// A listener systemd holds for batond: its real address is read from the socket.
Result<BoundListener> AdoptSystemdListener(const ListenerConfig& config) {
  auto& sockets = InheritedSockets();
  auto it = sockets.find(config.address.path);
  if (it == sockets.end())
    return Status::FailedPrecondition("no socket named '" + config.address.path +
                                      "' was passed by systemd (LISTEN_FDNAMES)");
  UniqueFd fd(it->second);
  sockets.erase(it);
  sockaddr_storage actual{};
  socklen_t len = sizeof actual;
  int type = 0;
  socklen_t tlen = sizeof type;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&actual), &len) != 0 ||
      ::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &tlen) != 0)
    return Status::FromErrno("inspect the socket '" + config.address.path + "' from systemd", errno);
  SocketAddress a;
  char host[INET6_ADDRSTRLEN] = "";
  if (actual.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(actual);
    ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    a = SocketAddress{type == SOCK_DGRAM ? SocketAddress::Kind::kUdp : SocketAddress::Kind::kTcp, host,
                      ntohs(in.sin_port), ""};
  } else if (actual.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(actual);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    a = SocketAddress{type == SOCK_DGRAM ? SocketAddress::Kind::kUdp : SocketAddress::Kind::kTcp6, host,
                      ntohs(in6.sin6_port), ""};
  } else if (actual.ss_family == AF_UNIX) {
    a = SocketAddress{SocketAddress::Kind::kUnix, "", 0, reinterpret_cast<const sockaddr_un&>(actual).sun_path};
  } else {
    return Status::FailedPrecondition("the socket '" + config.address.path + "' from systemd is of an unknown family");
  }
  BoundListener bound{config.name, a, std::move(fd)};
  bound.from_systemd = true;
  return bound;
}

}  // namespace

Result<BoundListener> BindListener(const ListenerConfig& config) {
  if (config.address.kind == SocketAddress::Kind::kSystemd) return AdoptSystemdListener(config);
  const SocketAddress& a = config.address;
  sockaddr_storage ss;
  socklen_t len = FillSockaddr(a, ss);
  int type = (a.is_stream() ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC;
  UniqueFd fd(::socket(ss.ss_family, type, 0));
  std::string what = "listener '" + config.name + "' " + a.ToString();
  if (!fd) return Status::FromErrno("create socket for " + what, errno);
  int one = 1;
  if (a.is_inet()) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Kernel steering: every generation's socket joins one reuseport group on this address.
  if (config.mode == ListenMode::kKernel && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    return Status::FromErrno("set SO_REUSEPORT on " + what, errno);
  if (ss.ss_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (a.kind == SocketAddress::Kind::kUnix) {
    struct stat st;
    if (::lstat(a.path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        return Status::FailedPrecondition("unable to bind " + what + ": a file that is not a socket is in the way");
      ::unlink(a.path.c_str());
    }
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return Status::FromErrno("bind " + what, errno);
  if (a.is_stream() && ::listen(fd.get(), config.backlog) != 0) return Status::FromErrno("listen on " + what, errno);

  BoundListener bound{config.name, a, std::move(fd)};
  if (a.is_inet()) {
    sockaddr_storage actual;
    socklen_t alen = sizeof actual;
    ::getsockname(bound.fd.get(), reinterpret_cast<sockaddr*>(&actual), &alen);
    bound.address.port = ntohs(actual.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&actual)->sin_port
                                                           : reinterpret_cast<sockaddr_in6*>(&actual)->sin6_port);
  }
  return bound;
}

std::vector<std::pair<std::string, std::string>> ListenerEnvironment(const std::vector<std::string>& names) {
  std::vector<std::pair<std::string, std::string>> env;
  if (names.empty()) return env;
  std::string fdnames, nginx;
  for (size_t i = 0; i < names.size(); ++i) {
    fdnames += (i ? ":" : "") + names[i];
    nginx += std::to_string(3 + i) + ";";
  }
  env.emplace_back("LISTEN_FDS", std::to_string(names.size()));
  env.emplace_back("LISTEN_FDNAMES", fdnames);
  env.emplace_back("EINHORN_FD_COUNT", std::to_string(names.size()));
  for (size_t i = 0; i < names.size(); ++i) env.emplace_back("EINHORN_FD_" + std::to_string(i), std::to_string(3 + i));
  env.emplace_back("NGINX", nginx);
  return env;
}
}  // namespace baton
