#include "supervisor/control/http_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <deque>
#include <filesystem>

#include "supervisor/base/json_text.h"
#include "supervisor/base/lifetime.h"
#include "supervisor/base/log.h"
#include "supervisor/control/protocol.h"
#include "supervisor/sockets/fd_limit.h"

namespace baton {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
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

class Session : public std::enable_shared_from_this<Session>, public Responder {
 public:
  Session(local::socket socket, ControlApi& api) : stream_(std::move(socket)), api_(api) {}

  // `refused`: the peer failed the credential check; it gets 403 after its request.
  void Start(bool refused, std::chrono::milliseconds read_timeout) {
    refused_ = refused;
    parser_.body_limit(protocol::kMaxBodyBytes);
    parser_.header_limit(16 * 1024);
    stream_.expires_after(read_timeout);
    http::async_read(stream_, buffer_, parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void Reply(int status, const nlohmann::json& body) override {
    Respond(status, "application/json", JsonText(body) + "\n");
  }

  void ReplyText(int status, const std::string& content_type, const std::string& body) override {
    Respond(status, content_type, body);
  }

  void StartStream() override {
    if (started_) return;
    started_ = true;
    Send(std::string("HTTP/1.1 200 OK\r\nServer: batond\r\nContent-Type: ") + protocol::kNdjson +
             "\r\nConnection: close\r\n\r\n",
         false);
    WatchForClose();
  }

  void OnClose(std::function<void()> fn) override {
    if (closed_) return fn();
    on_close_.push_back(std::move(fn));
  }
  void StreamLine(const nlohmann::json& line) override { Send(JsonText(line) + "\n", false); }
  void EndStream() override { Send("", true); }

 private:
  // One write of the head and the body together (a status can be hundreds of kilobytes:
  // no stream or intermediate copies).
  void Respond(int status, std::string_view content_type, std::string_view body) {
    if (started_) return;
    started_ = true;
    std::string reason(http::obsolete_reason(static_cast<http::status>(status)));
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nServer: batond\r\nContent-Type: ";
    head += content_type;
    head += "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    std::string message;
    message.reserve(head.size() + body.size());
    message += head;
    message += body;
    Send(std::move(message), true);
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return Reply(413, ControlApi::ErrorBody(
                            "too_large", "request body exceeds " + std::to_string(protocol::kMaxBodyBytes) + " bytes"));
    }
    if (ec == http::error::header_limit)
      return Reply(431, ControlApi::ErrorBody("too_large", "request headers too large"));
    if (ec) {
      if (ec != beast::error::timeout && ec != http::error::end_of_stream && ec != asio::error::eof)
        return Reply(400, ControlApi::ErrorBody("bad_request", "malformed HTTP request: " + ec.message()));
      return Close();
    }
    stream_.expires_never();  // an upgrade may take as long as its readiness timeout
    if (refused_) return Reply(403, ControlApi::ErrorBody("forbidden", "this uid may not use the control socket"));
    auto& req = parser_.get();
    ApiRequest api_req;
    api_req.method = std::string(req.method_string());
    api_req.target = std::string(req.target());
    api_req.body = std::move(req.body());
    auto accept = req[http::field::accept];
    api_req.wants_stream = accept.find(protocol::kNdjson) != beast::string_view::npos;
    api_.Handle(api_req, shared_from_this());
  }

  // Writes are queued so that stream lines never overlap; `close_after` ends the connection.
  void Send(std::string data, bool close_after) {
    if (closed_) return;
    queue_.push_back({std::move(data), close_after});
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    if (queue_.empty() || closed_) return;
    writing_ = true;
    auto& front = queue_.front();
    asio::async_write(stream_, asio::buffer(front.first), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (self->closed_) return;  // closed meanwhile: the queue goes with the session
      bool close = self->queue_.front().second;
      self->queue_.pop_front();
      if (ec || close) return self->Close();
      self->WriteNext();
    });
  }

  // A client of a stream sends nothing more; a read completing means it went away.
  void WatchForClose() {
    stream_.socket().async_read_some(asio::buffer(discard_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->WatchForClose();
    });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    if (!writing_) queue_.clear();  // a write in flight still uses the front buffer
    for (auto& fn : std::exchange(on_close_, {})) fn();
    beast::error_code ignored;
    stream_.socket().shutdown(local::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::basic_stream<local, asio::any_io_executor, beast::unlimited_rate_policy> stream_;
  ControlApi& api_;
  beast::flat_buffer buffer_;
  http::request_parser<http::string_body> parser_;
  std::deque<std::pair<std::string, bool>> queue_;
  bool writing_ = false;
  bool started_ = false;
  bool closed_ = false;
  bool refused_ = false;
  std::vector<std::function<void()>> on_close_;
  std::array<char, 256> discard_{};
};

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
      std::make_shared<Session>(std::move(socket), api)->Start(!ok, access.read_timeout);
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
