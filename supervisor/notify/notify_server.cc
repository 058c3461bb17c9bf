#include "supervisor/notify/notify_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstring>

#include "supervisor/base/lifetime.h"
#include "supervisor/base/log.h"
#include "supervisor/base/unique_fd.h"

namespace baton {

struct NotifyServer::Impl {
  boost::asio::posix::stream_descriptor socket;
  Handler handler;
  NotifyServer* owner = nullptr;
  Lifetime alive;

  Impl(boost::asio::io_context& io, int fd, Handler h) : socket(io, fd), handler(std::move(h)) {}

  void Wait() {
    socket.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [this, alive = alive.token()](const boost::system::error_code& ec) {
                        if (ec || !alive) return;
                        DrainDatagrams();
                        Wait();
                      });
  }

  void DrainDatagrams() {
    for (int i = 0; i < 256; ++i) {  // bounded per wakeup so a flood cannot starve the loop
      char data[4096];
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 16)];
      iovec iov{data, sizeof data - 1};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(socket.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0) return;
      int pid = 0;
      std::vector<UniqueFd> fds;  // closed unless the message stores them
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_CREDENTIALS) {
          ucred cred;
          std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
          pid = cred.pid;
        } else if (c->cmsg_type == SCM_RIGHTS) {
          size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          for (size_t k = 0; k < count; ++k) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
            fds.emplace_back(fd);
          }
        }
      }
      owner->received_++;
      if (pid <= 0 || (msg.msg_flags & MSG_TRUNC)) continue;
      NotifyMessage parsed = ParseNotifyMessage(std::string_view(data, static_cast<size_t>(n)));
      if (parsed.Is("FDSTORE", "1"))
        for (auto& fd : fds) parsed.fds.push_back(std::make_shared<UniqueFd>(std::move(fd)));
      handler(pid, parsed);
    }
  }
};

Result<std::unique_ptr<NotifyServer>> NotifyServer::Create(boost::asio::io_context& io, const std::string& path,
                                                           Handler handler, int inherited_fd) {
  UniqueFd fd(inherited_fd);
  if (!fd) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
      return Status::InvalidArgument("notify socket path longer than 107 bytes: " + path);
    std::memcpy(addr.sun_path, path.data(), path.size());
    fd.Reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return Status::FromErrno("create notify socket", errno);
    ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return Status::FromErrno("bind notify socket " + path, errno);
  }
  ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
  int rcvbuf = 1 << 20;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  auto impl = std::make_unique<Impl>(io, fd.ReleaseOwnership(), std::move(handler));
  std::unique_ptr<NotifyServer> server(new NotifyServer(std::move(impl), path));
  server->impl_->owner = server.get();
  server->impl_->Wait();
  return server;
}

int NotifyServer::fd() const { return impl_->socket.native_handle(); }

NotifyServer::NotifyServer(std::unique_ptr<Impl> impl, std::string path)
    : impl_(std::move(impl)), path_(std::move(path)) {}

NotifyServer::~NotifyServer() {
  impl_->alive.End();
  boost::system::error_code ec;
  impl_->socket.close(ec);
  ::unlink(path_.c_str());
}

}  // namespace baton
