#include "supervisor/sockets/kept_sockets.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

#include "supervisor/base/log.h"
#include "supervisor/base/number.h"
#include "supervisor/sockets/inherited_sockets.h"

namespace baton {
namespace {

// systemd takes printable ASCII but ':' in a name; '/' separates batond's parts.
std::string Escape(const std::string& part) {
  std::string out;
  for (unsigned char c : part) {
    if (c > ' ' && c <= '~' && c != ':' && c != '/' && c != '%') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

constexpr size_t kMaxName = 255;  // systemd's limit for FDNAME=

bool Fits(const ListenerConfig& config, const SocketAddress& kept, int fd) {
  const SocketAddress& want = config.address;
  if (want.kind != kept.kind) return false;
  if (want.kind == SocketAddress::Kind::kUnix) return want.path == kept.path;
  if (want.host != kept.host || (want.port != 0 && want.port != kept.port)) return false;
  int reuseport = 0;
  socklen_t len = sizeof reuseport;
  ::getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, &len);
  return (reuseport != 0) == (config.mode == ListenMode::kKernel);
}

}  // namespace

std::unique_ptr<SocketKeeper> SocketKeeper::FromEnvironment(Send send) {
  const char* size = std::getenv("FDSTORE");
  if (!size) return nullptr;
  auto n = ParseInteger<int>(size, "FDSTORE", 0, 1 << 20);
  if (!n.ok()) {
    spdlog::warn("not using systemd's file descriptor store: {}", n.status().message());
    return nullptr;
  }
  if (*n == 0) return nullptr;
  return std::make_unique<SocketKeeper>(std::move(send));
}

std::string SocketKeeper::ListenerName(const std::string& service, const std::string& listener) {
  return "baton/" + Escape(service) + "/" + Escape(listener);
}

std::string SocketKeeper::GenerationSocketName(const std::string& listener_name, int64_t generation) {
  return listener_name + "/" + std::to_string(generation);
}

void SocketKeeper::Keep(const std::string& name, int fd) {
  if (name.size() > kMaxName) {
    spdlog::warn("{}: not kept in systemd's file descriptor store: the name is longer than {} characters", name,
                 kMaxName);
    return;
  }
  send_("FDSTORE=1\nFDNAME=" + name, fd);
}

void SocketKeeper::Forget(const std::string& name) {
  if (name.size() <= kMaxName) send_("FDSTOREREMOVE=1\nFDNAME=" + name, -1);
}

void SocketKeeper::KeepListeners(const std::map<std::string, int>& listeners) {
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    if (listeners.count(it->first)) {
      ++it;
      continue;
    }
    Forget(it->first);
    it = listeners_.erase(it);
  }
  for (const auto& [name, fd] : listeners) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) continue;
    auto it = listeners_.find(name);
    if (it != listeners_.end() && it->second == st.st_ino) continue;
    // systemd keeps a second entry under the same name rather than replacing the first.
    if (it != listeners_.end()) Forget(name);
    Keep(name, fd);
    listeners_[name] = st.st_ino;
  }
}

std::optional<BoundListener> ReclaimListener(const std::string& service, const ListenerConfig& config,
                                             SocketKeeper* keeper) {
  std::string name = SocketKeeper::ListenerName(service, config.name);
  UniqueFd fd = TakeInheritedSocket(name);
  if (!fd) return std::nullopt;
  auto address = BoundAddress(fd.get());
  if (address.ok() && Fits(config, *address, fd.get())) {
    spdlog::info("{}: taking back {} as '{}' from systemd's file descriptor store", service, address->ToString(),
                 config.name);
    return BoundListener{config.name, *address, std::move(fd)};
  }
  spdlog::warn("{}: the socket systemd kept as '{}' is {}, not what the configuration asks for; binding anew", service,
               config.name, address.ok() ? address->ToString() : address.status().message());
  if (keeper) keeper->Forget(name);
  // Out of its port at once (systemd closes its copy later): the new socket can bind it.
  ::shutdown(fd.get(), SHUT_RD);
  return std::nullopt;
}

}  // namespace baton
