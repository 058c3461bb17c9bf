// Fuzz target: a control API request as bytes on the socket: Beast's parser with the
// server's limits, then the dashboard's access decision and ControlApi (routes, query
// strings, JSON bodies) against a fake Commands; every answer must serialise.
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>

#include "supervisor/base/json_text.h"
#include "supervisor/control/protocol.h"
#include "supervisor/control/web_access.h"
#include "tests/fakes/fake_commands.h"

namespace http = boost::beast::http;
using baton::ApiRequest;

namespace {

struct CheckingResponder : baton::Responder {
  void Reply(int status, const nlohmann::json& body) override {
    if (status < 200 || status > 599) __builtin_trap();
    (void)baton::JsonText(body);  // as the server writes it
  }
  void ReplyText(int, const std::string&, std::string) override {}
  void StartStream() override {}
  void StreamLine(const nlohmann::json& line) override { (void)baton::JsonText(line); }
  void StreamText(std::string) override {}
  void EndStream() override {}
  void OnClose(std::function<void()> fn) override { on_close.push_back(std::move(fn)); }
  std::vector<std::function<void()>> on_close;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(baton::protocol::kMaxBodyBytes);
  parser.header_limit(16 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_done()) return 0;
  auto& req = parser.get();
  ApiRequest request{std::string(req.method_string()), std::string(req.target()), req.body(),
                     req[http::field::accept].find(baton::protocol::kNdjson) != boost::beast::string_view::npos,
                     std::string(req[http::field::authorization])};
  // The dashboard's token is 64 hex digits; a request holding them is let through.
  auto decision = baton::DecideWebRequest(request, std::string(64, 'a'), size % 2 == 0);
  if (decision.route == baton::WebRoute::kForbidden && decision.reason.empty()) __builtin_trap();
  baton::testing::FakeCommands commands;
  commands.web = size % 3 == 0;
  baton::ControlApi api(commands);
  auto responder = std::make_shared<CheckingResponder>();
  api.Handle(request, responder);
  // Let long operations finish and streams end, as a client leaving would.
  if (commands.done) commands.done(baton::HandoverResult{});
  if (commands.stopped) commands.stopped();
  if (commands.follower) commands.follower(nlohmann::json{{"line", "x"}});
  if (commands.self_upgrade_accepted) commands.self_upgrade_accepted(nlohmann::json{{"attempt", 1}}, [] {});
  if (commands.status_follower) commands.status_follower("{}");
  for (auto& fn : responder->on_close) fn();
  return 0;
}
