// The PROXY protocol version 2 header (haproxy.org/download/2.6/doc/proxy-protocol.txt),
// sent to a backend before the client's bytes so it can see the real client address. Pure.
#pragma once

#include <sys/socket.h>

#include <string>

namespace baton {

// PROXY with the TCP/IPv4 or TCP/IPv6 addresses of a proxied connection: `client` is its
// peer, `local` the public address it reached. For other families (a unix listener) the
// header is LOCAL with no addresses, which backends accept as "no client address known".
std::string ProxyV2Header(const sockaddr_storage& client, const sockaddr_storage& local);

}  // namespace baton
