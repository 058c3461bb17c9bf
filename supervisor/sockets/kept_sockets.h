// batond's sockets in systemd's file descriptor store (FDSTORE=1 with FDNAME=), so that a
// crash of batond refuses no connection: systemd holds every listener batond bound and
// every generation's steered socket while batond is down, clients wait in their queues,
// and the restarted batond takes them back (LISTEN_FDNAMES) instead of binding anew.
//
// Names: "baton/SERVICE/LISTENER" for a listener (the anchor of a kernel-steered one) and
// "baton/SERVICE/LISTENER/GENERATION" for a generation's own steered socket. A character
// systemd does not take in a name (':', anything outside printable ASCII), '/' and '%'
// are written as %XX.
//
// Used when systemd says its store is enabled: $FDSTORE, which systemd 254 and later set
// from FileDescriptorStoreMax= (the packaged unit sets it for older ones).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "supervisor/config/config.h"
#include "supervisor/sockets/listener_set.h"

namespace baton {

class SocketKeeper {
 public:
  // An sd_notify message, with a descriptor attached when `fd` >= 0.
  using Send = std::function<void(const std::string& message, int fd)>;
  explicit SocketKeeper(Send send) : send_(std::move(send)) {}
  // Null unless $FDSTORE is a positive number.
  static std::unique_ptr<SocketKeeper> FromEnvironment(Send send);

  static std::string ListenerName(const std::string& service, const std::string& listener);
  static std::string GenerationSocketName(const std::string& listener_name, int64_t generation);

  void Keep(const std::string& name, int fd);
  void Forget(const std::string& name);
  // Exactly these listeners are kept (name -> descriptor): one no longer listed is
  // forgotten, one whose socket changed (a reload bound it anew) is replaced.
  void KeepListeners(const std::map<std::string, int>& listeners);

 private:
  Send send_;
  std::map<std::string, ino_t> listeners_;  // kept listener -> its socket's inode
};

// The listener `service` kept in the store before a restart, when it is still bound as
// `config` asks (same address; port 0 takes any; SO_REUSEPORT as the mode needs). A kept
// socket that no longer fits is closed and forgotten; the listener is then bound anew.
std::optional<BoundListener> ReclaimListener(const std::string& service, const ListenerConfig& config,
                                             SocketKeeper* keeper);

}  // namespace baton
