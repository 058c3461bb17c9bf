#include "ctl/client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "supervisor/control/protocol.h"

namespace baton {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

ClientResponse CallControl(const std::string& socket_path, const std::string& method, const std::string& target,
                           const std::string& body, const std::function<void(const nlohmann::json&)>& on_line) {
  ClientResponse out;
  asio::io_context io;
  asio::local::stream_protocol::socket sock(io);
  beast::error_code ec;
  sock.connect(asio::local::stream_protocol::endpoint(socket_path), ec);
  if (ec) {
    out.error = "cannot connect to " + socket_path + ": " + ec.message();
    return out;
  }
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "batond");
  req.set(http::field::user_agent, "batonctl");
  req.set(http::field::accept, on_line ? protocol::kNdjson : "application/json");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(sock, req, ec);
  if (ec) {
    out.error = "cannot send request: " + ec.message();
    return out;
  }

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  http::read_header(sock, buffer, parser, ec);
  if (ec) {
    out.error = "no response from batond: " + ec.message();
    return out;
  }
  out.status = parser.get().result_int();
  bool stream = parser.get()[http::field::content_type].find(protocol::kNdjson) != beast::string_view::npos;
  std::string pending;
  char chunk[8192];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    // read_some: a stream's line goes out as it comes (read would wait for a full chunk).
    http::read_some(sock, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec == http::error::partial_message || ec == asio::error::eof) break;
    if (ec) {
      out.error = "response cut short: " + ec.message();
      break;
    }
    size_t n = sizeof chunk - parser.get().body().size;
    out.raw.append(chunk, n);
    if (stream && on_line) {
      pending.append(chunk, n);
      for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
        auto line = nlohmann::json::parse(pending.substr(0, nl), nullptr, false);
        pending.erase(0, nl + 1);
        if (!line.is_discarded()) on_line(line);
      }
    }
  }
  if (!stream) out.body = nlohmann::json::parse(out.raw, nullptr, false);
  if (out.body.is_discarded()) out.body = nullptr;
  return out;
}

}  // namespace baton
