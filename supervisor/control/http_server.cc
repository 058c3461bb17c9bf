#include "supervisor/control/http_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <filesystem>

#include "supervisor/base/lifetime.h"
#include "supervisor/base/log.h"
#include "supervisor/control/http_session.h"
#include "supervisor/control/protocol.h"
#include "supervisor/sockets/fd_limit.h"

namespace baton {

namespace asio = boost::asio;
namespace beast = boost::beast;
using local = asio::local::stream_protocol;

namespace {

bool PeerAllowed(const ucred& cred, const ControlAccess& access) {
  if (cred.uid == 0 || cred.uid == ::geteuid()) return true;
  for (unsigned uid : access.uids)
    if (cred.uid == uid) return true;
  for (unsigned gid : access.gids)
    if (cred.gid == gid) return true;
  return false;
}

}  // namespace

struct ControlServer::Impl {
  Impl(asio::io_context& io, ControlApi& api) : acceptor(io), retry(io), api(api) {}
  local::acceptor acceptor;
  asio::steady_timer retry;
  ControlApi& api;
  ControlAccess access;
  std::string path;
  uint64_t refused = 0;
  uint64_t shed = 0;      // clients answered 503 to keep kControlFdReserve descriptors free
  bool shedding = false;  // since the last client served: log once per episode
  Lifetime alive;

  // Answers 503 at once and closes, without reading the request: plain syscalls only, since
  // descriptors are short. Accepting goes on, so the queue drains instead of waiting.
  void Shed(local::socket socket) {
    static const std::string kBusy = [] {
      std::string body =
          R"({"error":{"code":"unavailable","message":"batond is near its open-file limit; try again shortly"}})";
      return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    }();
    ++shed;
    if (!shedding)
      spdlog::warn("control: near the open-file limit (descriptor {} given out); answering 503 to keep {} free",
                   socket.native_handle(), kControlFdReserve);
    shedding = true;
    (void)::send(socket.native_handle(), kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    beast::error_code ignored;
    socket.close(ignored);
    Accept();
  }

  void Accept() {
    acceptor.async_accept([this, alive = alive.token()](beast::error_code ec, local::socket socket) {
      if (!alive || ec == asio::error::operation_aborted) return;
      if (ec) {
        // e.g. EMFILE: keep serving the connections we have, try again shortly.
        spdlog::warn("control: accept failed: {}", ec.message());
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this, alive](beast::error_code ec) {
          if (!ec && alive) Accept();
        });
        return;
      }
      ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
      if (NearFdLimit(socket.native_handle(), kControlFdReserve)) return Shed(std::move(socket));
      shedding = false;
      ucred cred{};
      socklen_t len = sizeof cred;
      bool ok =
          ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && PeerAllowed(cred, access);
      if (!ok) {
        ++refused;
        spdlog::warn("control: refused a connection from uid {} gid {} pid {}", cred.uid, cred.gid, cred.pid);
      }
      ControlApi* to = &api;
      ServeHttp(std::move(socket), access.read_timeout, [to, ok](ApiRequest request, std::shared_ptr<Responder> r) {
        if (!ok) return r->Reply(403, ControlApi::ErrorBody("forbidden", "this uid may not use the control socket"));
        to->Handle(request, std::move(r));
      });
      Accept();
    });
  }
};

Result<std::unique_ptr<ControlServer>> ControlServer::Create(asio::io_context& io, const std::string& path,
                                                             ControlAccess access, ControlApi& api, int inherited_fd) {
  auto impl = std::make_unique<Impl>(io, api);
  impl->path = path;
  impl->access = std::move(access);
  if (inherited_fd >= 0) {
    ::fcntl(inherited_fd, F_SETFD, FD_CLOEXEC);
    beast::error_code ec;
    impl->acceptor.assign(local(), inherited_fd, ec);
    if (ec) return Status::FromErrno("serve the inherited control socket " + path, ec.value());
    impl->Accept();
    return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
  }
  std::error_code fec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), fec);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Status::FailedPrecondition("control socket path " + path + " is not a socket");
    local::socket probe(io);
    beast::error_code ec;
    probe.connect(local::endpoint(path), ec);
    if (!ec) return Status::FailedPrecondition("another batond is already serving the control socket " + path);
    ::unlink(path.c_str());
  }
  beast::error_code ec;
  impl->acceptor.open(local(), ec);
  if (!ec) {
    mode_t old = ::umask(0177);  // the socket is created 0600
    impl->acceptor.bind(local::endpoint(path), ec);
    ::umask(old);
  }
  if (!ec && impl->access.group) {
    if (::chown(path.c_str(), static_cast<uid_t>(-1), *impl->access.group) != 0 || ::chmod(path.c_str(), 0660) != 0)
      ec = beast::error_code(errno, boost::system::system_category());
  }
  if (!ec) impl->acceptor.listen(1024, ec);
  if (ec) return Status::FromErrno("serve control socket " + path, ec.value());
  ::fcntl(impl->acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  impl->Accept();
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

int ControlServer::fd() const { return impl_->acceptor.native_handle(); }

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

uint64_t ControlServer::refused() const { return impl_->refused; }

uint64_t ControlServer::shed() const { return impl_->shed; }

ControlServer::~ControlServer() {
  impl_->alive.End();
  beast::error_code ec;
  impl_->acceptor.close(ec);
  impl_->retry.cancel();
  ::unlink(impl_->path.c_str());
}

}  // namespace baton
