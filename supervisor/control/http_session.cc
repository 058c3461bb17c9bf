#include "supervisor/control/http_session.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "supervisor/base/json_text.h"
#include "supervisor/control/protocol.h"

namespace baton {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

template <class Protocol>
class Session : public std::enable_shared_from_this<Session<Protocol>>, public Responder {
 public:
  Session(typename Protocol::socket socket, RequestHandler handler)
      : stream_(std::move(socket)), handler_(std::move(handler)) {}

  void Start(std::chrono::milliseconds read_timeout) {
    parser_.body_limit(protocol::kMaxBodyBytes);
    parser_.header_limit(16 * 1024);
    stream_.expires_after(read_timeout);
    http::async_read(stream_, buffer_, parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void Reply(int status, const nlohmann::json& body) override {
    Respond(status, "application/json", JsonText(body) + "\n");
  }

  void ReplyText(int status, const std::string& content_type, std::string body) override {
    Respond(status, content_type, std::move(body));
  }

  void StartStream() override {
    if (started_) return;
    started_ = true;
    Send(std::string("HTTP/1.1 200 OK\r\nServer: batond\r\nContent-Type: ") + protocol::kNdjson +
             "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
         false);
    WatchForClose();
  }

  void OnClose(std::function<void()> fn) override {
    if (closed_) return fn();
    on_close_.push_back(std::move(fn));
  }
  void StreamLine(const nlohmann::json& line) override { Send(JsonText(line) + "\n", false); }
  void StreamText(std::string line) override {
    line += '\n';
    Send(std::move(line), false);
  }
  void EndStream() override { Send("", true); }

 private:
  // One write of the head and the body together (a status can be hundreds of kilobytes:
  // no stream or intermediate copies).
  void Respond(int status, std::string_view content_type, std::string body) {
    if (started_) return;
    started_ = true;
    std::string reason(http::obsolete_reason(static_cast<http::status>(status)));
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nServer: batond\r\nContent-Type: ";
    head += content_type;
    head += "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer";
    if (content_type.rfind("text/html", 0) == 0)  // the dashboard: its own files only, in no frame
      head += "\r\nContent-Security-Policy: default-src 'self'; frame-ancestors 'none'; base-uri 'none'";
    if (status == 401) head += "\r\nWWW-Authenticate: Bearer";
    head += "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    Send(std::move(head), true, std::move(body));
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
    auto& req = parser_.get();
    ApiRequest api_req;
    api_req.method = std::string(req.method_string());
    api_req.target = std::string(req.target());
    api_req.body = std::move(req.body());
    api_req.authorization = std::string(req[http::field::authorization]);
    auto accept = req[http::field::accept];
    api_req.wants_stream = accept.find(protocol::kNdjson) != beast::string_view::npos;
    handler_(std::move(api_req), this->shared_from_this());
  }

  // Writes are queued so that stream lines never overlap; `close_after` ends the connection.
  // A body given apart from its head goes out with it in one gathered write, uncopied.
  void Send(std::string data, bool close_after, std::string body = {}) {
    if (closed_) return;
    queue_.push_back({std::move(data), std::move(body), close_after});
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    if (queue_.empty() || closed_) return;
    writing_ = true;
    auto& front = queue_.front();
    std::array<asio::const_buffer, 2> buffers{asio::buffer(front.data), asio::buffer(front.body)};
    asio::async_write(stream_, buffers, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (self->closed_) return;  // closed meanwhile: the queue goes with the session
      bool close = self->queue_.front().close_after;
      self->queue_.pop_front();
      if (ec || close) return self->Close();
      self->WriteNext();
    });
  }

  // A client of a stream sends nothing more; a read completing means it went away.
  void WatchForClose() {
    stream_.socket().async_read_some(asio::buffer(discard_),
                                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
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
    stream_.socket().shutdown(Protocol::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::basic_stream<Protocol, asio::any_io_executor, beast::unlimited_rate_policy> stream_;
  RequestHandler handler_;
  beast::flat_buffer buffer_;
  http::request_parser<http::string_body> parser_;
  struct Write {
    std::string data, body;
    bool close_after;
  };
  std::deque<Write> queue_;
  bool writing_ = false;
  bool started_ = false;
  bool closed_ = false;
  std::vector<std::function<void()>> on_close_;
  std::array<char, 256> discard_{};
};

}  // namespace

template <class Socket>
void ServeHttp(Socket socket, std::chrono::milliseconds read_timeout, RequestHandler handler) {
  using Protocol = typename Socket::protocol_type;
  std::make_shared<Session<Protocol>>(std::move(socket), std::move(handler))->Start(read_timeout);
}

template void ServeHttp(asio::local::stream_protocol::socket, std::chrono::milliseconds, RequestHandler);
template void ServeHttp(asio::ip::tcp::socket, std::chrono::milliseconds, RequestHandler);

}  // namespace baton
