#include "supervisor/control/health_server.h"

#include <fcntl.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "supervisor/base/json_text.h"
#include "supervisor/base/lifetime.h"
#include "supervisor/base/log.h"

namespace baton {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kReadTimeout = std::chrono::seconds(5);

class HealthSession : public std::enable_shared_from_this<HealthSession> {
 public:
  HealthSession(tcp::socket socket, HealthServer::View view, std::shared_ptr<int> clients)
      : stream_(std::move(socket)), view_(std::move(view)), clients_(std::move(clients)) {
    ++*clients_;
  }
  ~HealthSession() { --*clients_; }

  void Start() {
    parser_.header_limit(8 * 1024);
    stream_.expires_after(kReadTimeout);
    http::async_read(stream_, buffer_, parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == asio::error::eof) return;
    HealthAnswer answer{400, {{"error", "malformed HTTP request"}}};
    bool head = false;
    if (!ec) {
      const auto& req = parser_.get();
      head = req.method() == http::verb::head;
      answer = AnswerHealth(std::string_view(req.method_string().data(), req.method_string().size()),
                            std::string_view(req.target().data(), req.target().size()), view_());
    }
    response_.result(static_cast<http::status>(answer.status));
    response_.version(11);
    response_.set(http::field::server, "batond");
    response_.set(http::field::content_type, "application/json");
    response_.set(http::field::cache_control, "no-store");
    response_.keep_alive(false);
    response_.body() = JsonText(answer.body) + "\n";
    response_.prepare_payload();
    if (head) response_.body().clear();  // Content-Length stays that of the GET
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code, size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{8 * 1024};
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> response_;
  HealthServer::View view_;
  std::shared_ptr<int> clients_;
};

}  // namespace

struct HealthServer::Impl {
  explicit Impl(asio::io_context& io) : acceptor(io), retry(io) {}
  tcp::acceptor acceptor;
  asio::steady_timer retry;  // after a failed accept (EMFILE): the queue stays readable
  View view;
  std::shared_ptr<int> clients = std::make_shared<int>(0);
  bool accepting = true;  // wanted: a self-upgrade stops it for a moment
  bool pending = false;   // an accept is outstanding (a cancelled one completes later)
  Lifetime alive;

  void Accept() {
    pending = true;
    acceptor.async_accept([this, alive = alive.token()](beast::error_code ec, tcp::socket socket) {
      if (!alive) return;
      pending = false;
      if (!ec) {
        // Accepted before a cancel took effect: it is served all the same.
        ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
        if (*clients < kMaxClients) std::make_shared<HealthSession>(std::move(socket), view, clients)->Start();
      } else if (ec != asio::error::operation_aborted) {
        spdlog::warn("health: accept failed: {}", ec.message());
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this, alive](beast::error_code ec) {
          if (!ec && alive && accepting && !pending) Accept();
        });
        return;
      }
      if (accepting) Accept();
    });
  }
};

Result<std::unique_ptr<HealthServer>> HealthServer::Create(asio::io_context& io, const SocketAddress& address,
                                                           View view, int inherited_fd) {
  auto impl = std::make_unique<Impl>(io);
  impl->view = std::move(view);
  const bool v6 = address.kind == SocketAddress::Kind::kTcp6;
  beast::error_code ec;
  if (inherited_fd >= 0) {
    ::fcntl(inherited_fd, F_SETFD, FD_CLOEXEC);
    impl->acceptor.assign(v6 ? tcp::v6() : tcp::v4(), inherited_fd, ec);
  } else {
    tcp::endpoint endpoint(asio::ip::make_address(address.host, ec), static_cast<unsigned short>(address.port));
    if (!ec) impl->acceptor.open(endpoint.protocol(), ec);
    if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && v6) impl->acceptor.set_option(asio::ip::v6_only(true), ec);
    if (!ec) impl->acceptor.bind(endpoint, ec);
    if (!ec) impl->acceptor.listen(128, ec);
    if (!ec) ::fcntl(impl->acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  }
  if (ec) return Status::FromErrno("daemon.health: serve " + address.ToString(), ec.value());
  spdlog::info("health: serving /livez and /readyz on {}", address.ToString());
  impl->Accept();
  return std::unique_ptr<HealthServer>(new HealthServer(std::move(impl)));
}

HealthServer::HealthServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

int HealthServer::fd() const { return impl_->acceptor.native_handle(); }

void HealthServer::StopAccepting() {
  impl_->accepting = false;
  beast::error_code ignored;
  impl_->acceptor.cancel(ignored);
}

void HealthServer::StartAccepting() {
  impl_->accepting = true;
  if (!impl_->pending) impl_->Accept();
}

int HealthServer::clients() const { return *impl_->clients; }

HealthServer::~HealthServer() {
  impl_->alive.End();
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->retry.cancel();
}

}  // namespace baton
