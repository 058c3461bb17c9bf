#include "supervisor/sockets/listener_set.h"

#include <fcntl.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "supervisor/base/log.h"
#include "supervisor/sockets/inherited_sockets.h"

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

// A listener systemd holds for batond: its real address is read from the socket.
Result<BoundListener> AdoptSystemdListener(const ListenerConfig& config) {
  UniqueFd fd = TakeInheritedSocket(config.address.path);
  if (!fd)
    return Status::FailedPrecondition("no socket named '" + config.address.path +
                                      "' was passed by systemd (LISTEN_FDNAMES)");
  auto address = BoundAddress(fd.get());
  if (!address.ok())
    return Status::FailedPrecondition("the socket '" + config.address.path +
                                      "' from systemd: " + address.status().message());
  BoundListener bound{config.name, *address, std::move(fd)};
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
  if (a.is_inet())  // port 0: the one the kernel chose
    if (auto actual = BoundAddress(bound.fd.get()); actual.ok()) bound.address.port = actual->port;
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
