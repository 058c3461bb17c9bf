// A tunnel session's channels: each connection the edge forwards becomes a channel joined
// to a connection to the target listener, and bytes are pumped both ways within the SSH
// window, with EOF passed on each way.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "supervisor/base/log.h"
#include "supervisor/proxy/proxy_protocol.h"
#include "supervisor/tunnel/tunnel_session_impl.h"

namespace baton {

void TunnelSession::AcceptChannels() {
  for (;;) {
    int port = 0, originator_port = 0;
    char* originator = nullptr;
    ssh_channel c = Ssh().ssh_channel_open_forward_port(impl_->session, 0, &port, &originator, &originator_port);
    if (!c) return;
    std::string client = originator ? originator : "";
    if (originator) Ssh().ssh_string_free_char(originator);
    int fd = ConnectTo(target_);
    if (fd < 0) {
      spdlog::warn("tunnel {}: cannot reach {}: {}", config_.name, target_.ToString(), std::strerror(errno));
      Ssh().ssh_channel_close(c);
      Ssh().ssh_channel_free(c);
      continue;
    }
    auto ch = std::make_unique<Channel>(io_, fd);
    ch->id = impl_->next_channel++;
    ch->channel = c;
    if (config_.proxy_protocol) ch->to_sock = ProxyHeader(client, originator_port);
    channels_total_++;
    uint64_t id = ch->id;
    impl_->channels.emplace(id, std::move(ch));
    // The target is one of batond's own listeners: the connect completes at once or soon.
    Channel& ref = *impl_->channels[id];
    ref.waiting_write = true;
    auto alive = alive_.token();
    ref.sock.async_wait(Descriptor::wait_write, [this, alive, id](const boost::system::error_code& ec) {
      if (!alive || ec) return;
      Channel* ch = FindChannel(id);
      if (!ch) return;
      ch->waiting_write = false;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(ch->sock.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        spdlog::warn("tunnel {}: cannot reach {}: {}", config_.name, target_.ToString(), std::strerror(err));
        return CloseChannel(*ch);
      }
      ch->connected = true;
      PumpChannel(*ch);
      WaitSession();  // channel writes may be pending in the session
    });
  }
}

// Moves bytes both ways as far as they go. Reading the channel only while the socket
// takes what was read keeps the edge within the channel window; reading the socket only
// up to the window the edge granted keeps us within its window.
void TunnelSession::PumpChannel(Channel& ch) {
  if (!ch.connected) return;
  if (!EdgeToSocket(ch) || !SocketToEdge(ch)) return;  // closed on the way
  bool finished = ch.eof_to_channel && ch.eof_to_sock && ch.to_sock.empty();
  if (finished || Ssh().ssh_channel_is_closed(ch.channel)) CloseChannel(ch);
}

// Pumps the channel again once its socket can be written (or read) without blocking.
void TunnelSession::WaitChannel(Channel& ch, bool for_write) {
  bool& waiting = for_write ? ch.waiting_write : ch.waiting_read;
  if (waiting) return;
  waiting = true;
  auto wake = [this, alive = alive_.token(), id = ch.id, for_write](const boost::system::error_code& ec) {
    if (!alive || ec) return;
    if (Channel* c = FindChannel(id)) {
      (for_write ? c->waiting_write : c->waiting_read) = false;
      PumpChannel(*c);
      WaitSession();
    }
  };
  ch.sock.async_wait(for_write ? Descriptor::wait_write : Descriptor::wait_read, wake);
}

// Edge -> socket: what the channel holds, until the socket would block or the channel is
// empty; the channel's EOF shuts the socket's write side. False once the channel closed.
bool TunnelSession::EdgeToSocket(Channel& ch) {
  char buf[kTunnelChunk];
  int fd = ch.sock.native_handle();
  for (;;) {
    while (!ch.to_sock.empty()) {
      ssize_t n = ::send(fd, ch.to_sock.data(), ch.to_sock.size(), MSG_NOSIGNAL);
      if (n > 0) {
        ch.to_sock.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && WouldBlock(errno)) {
        WaitChannel(ch, /*for_write=*/true);
        return true;
      }
      CloseChannel(ch);  // the target reset
      return false;
    }
    int n = Ssh().ssh_channel_read_nonblocking(ch.channel, buf, sizeof buf, 0);
    if (n > 0) {
      ch.to_sock.assign(buf, static_cast<size_t>(n));
      bytes_in_ += static_cast<uint64_t>(n);
      continue;
    }
    if (n == SSH_ERROR) {
      CloseChannel(ch);
      return false;
    }
    if (Ssh().ssh_channel_is_eof(ch.channel) && !ch.eof_to_sock) {
      ::shutdown(fd, SHUT_WR);
      ch.eof_to_sock = true;
    }
    return true;
  }
}

// Socket -> edge, within the window the edge granted; the socket's EOF is sent on. False
// once the channel closed.
bool TunnelSession::SocketToEdge(Channel& ch) {
  char buf[kTunnelChunk];
  while (!ch.eof_to_channel) {
    uint32_t window = Ssh().ssh_channel_window_size(ch.channel);
    if (window == 0) break;  // the edge will grant more; the session wakes us then
    ssize_t n = ::recv(ch.sock.native_handle(), buf, std::min<size_t>(sizeof buf, window), 0);
    if (n > 0) {
      if (Ssh().ssh_channel_write(ch.channel, buf, static_cast<uint32_t>(n)) == SSH_ERROR) {
        CloseChannel(ch);
        return false;
      }
      bytes_out_ += static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) {
      Ssh().ssh_channel_send_eof(ch.channel);
      ch.eof_to_channel = true;
      break;
    }
    if (WouldBlock(errno)) {
      WaitChannel(ch, /*for_write=*/false);
      break;
    }
    CloseChannel(ch);
    return false;
  }
  return true;
}

// The PROXY v2 header for a connection the edge accepted from client:port on remote_bind.
std::string TunnelSession::ProxyHeader(const std::string& client, int client_port) const {
  auto address = [](const std::string& host, int port) {
    sockaddr_storage ss{};
    auto& in = reinterpret_cast<sockaddr_in&>(ss);
    auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
    if (::inet_pton(AF_INET, host.c_str(), &in.sin_addr) == 1) {
      in.sin_family = AF_INET;
      in.sin_port = htons(static_cast<uint16_t>(port));
    } else if (::inet_pton(AF_INET6, host.c_str(), &in6.sin6_addr) == 1) {
      in6.sin6_family = AF_INET6;
      in6.sin6_port = htons(static_cast<uint16_t>(port));
    }
    return ss;
  };
  return ProxyV2Header(address(client, client_port), address(config_.remote_host, config_.remote_port));
}

void TunnelSession::CloseChannel(Channel& ch) { impl_->channels.erase(ch.id); }

TunnelSession::Channel* TunnelSession::FindChannel(uint64_t id) {
  auto it = impl_->channels.find(id);
  return it == impl_->channels.end() ? nullptr : it->second.get();
}

}  // namespace baton
