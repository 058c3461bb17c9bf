#include "supervisor/control/web_server.h"

#include <fcntl.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>

#include "supervisor/base/lifetime.h"
#include "supervisor/base/log.h"
#include "supervisor/control/http_session.h"
#include "supervisor/control/web_access.h"
#include "supervisor/control/web_assets.h"
#include "supervisor/sockets/fd_limit.h"

namespace baton {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct WebServer::Impl {
  Impl(asio::io_context& io, ControlApi& api) : acceptor(io), retry(io), api(api) {}
  tcp::acceptor acceptor;
  asio::steady_timer retry;  // after a failed accept (EMFILE): the queue stays readable
  ControlApi& api;
  Options options;
  std::shared_ptr<int> clients = std::make_shared<int>(0);
  Lifetime alive;

  void Handle(ApiRequest request, std::shared_ptr<Responder> responder) {
    WebDecision d = DecideWebRequest(request, options.token, options.read_only);
    switch (d.route) {
      case WebRoute::kAsset: {
        const WebAsset* asset = FindWebAsset(d.asset);
        if (asset) return responder->ReplyText(200, std::string(asset->content_type), std::string(asset->body));
        break;
      }
      case WebRoute::kApi: return api.Handle(request, std::move(responder));
      case WebRoute::kInfo: return responder->Reply(200, {{"read_only", options.read_only}});
      case WebRoute::kUnauthorized:
        return responder->Reply(
            401, ControlApi::ErrorBody("unauthorized",
                                       "this needs the dashboard's token: `batonctl dashboard` prints its address"));
      case WebRoute::kForbidden: return responder->Reply(403, ControlApi::ErrorBody("forbidden", d.reason));
      case WebRoute::kNotFound: break;
    }
    responder->Reply(404, ControlApi::ErrorBody("not_found", "no such page: " + request.target));
  }

  void Accept() {
    acceptor.async_accept([this, alive = alive.token()](boost::system::error_code ec, tcp::socket socket) {
      if (!alive || ec == asio::error::operation_aborted) return;
      if (ec) {
        spdlog::warn("web: accept failed: {}", ec.message());
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this, alive](boost::system::error_code ec) {
          if (!ec && alive) Accept();
        });
        return;
      }
      ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
      if (*clients < kMaxClients && !NearFdLimit(socket.native_handle(), kControlFdReserve)) {
        // The count goes down when the session, which owns the handler, ends.
        auto slot = std::shared_ptr<int>(clients.get(), [clients = clients](int* n) { --*n; });
        ++*clients;
        ServeHttp(std::move(socket), options.read_timeout,
                  [this, slot, alive](ApiRequest request, std::shared_ptr<Responder> responder) {
                    if (alive) Handle(std::move(request), std::move(responder));
                  });
      }
      Accept();
    });
  }
};

Result<std::unique_ptr<WebServer>> WebServer::Create(asio::io_context& io, Options options, ControlApi& api,
                                                     int inherited_fd) {
  auto impl = std::make_unique<Impl>(io, api);
  const SocketAddress address = options.address;
  impl->options = std::move(options);
  const bool v6 = address.kind == SocketAddress::Kind::kTcp6;
  boost::system::error_code ec;
  if (inherited_fd >= 0) {
    impl->acceptor.assign(v6 ? tcp::v6() : tcp::v4(), inherited_fd, ec);
  } else {
    tcp::endpoint endpoint(asio::ip::make_address(address.host, ec), address.port);
    if (!ec) impl->acceptor.open(endpoint.protocol(), ec);
    if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && v6) impl->acceptor.set_option(asio::ip::v6_only(true), ec);
    if (!ec) impl->acceptor.bind(endpoint, ec);
    if (!ec) impl->acceptor.listen(128, ec);
    if (!ec) ::fcntl(impl->acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  }
  if (ec) return Status::FromErrno("daemon.web: serve " + address.ToString(), ec.value());
  impl->Accept();
  auto server = std::unique_ptr<WebServer>(new WebServer(std::move(impl)));
  spdlog::info("web: the dashboard is on {}{}", server->Url().substr(0, server->Url().find('#')),
               server->read_only() ? " (read-only)" : "");
  return server;
}

WebServer::WebServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

int WebServer::fd() const { return impl_->acceptor.native_handle(); }

bool WebServer::read_only() const { return impl_->options.read_only; }

std::string WebServer::Url() const {
  boost::system::error_code ec;
  tcp::endpoint at = impl_->acceptor.local_endpoint(ec);
  std::string host = impl_->options.address.host;
  // A wildcard address serves loopback too; a browser cannot open the wildcard itself.
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(ec ? 0 : at.port()) + "/#token=" + impl_->options.token;
}

WebServer::~WebServer() {
  impl_->alive.End();
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->retry.cancel();
}

}  // namespace baton
