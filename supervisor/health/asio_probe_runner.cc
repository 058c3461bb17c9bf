#include "supervisor/health/asio_probe_runner.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <charconv>

namespace baton {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

Result<HostPort> ParseProbeTarget(const std::string& target, bool is_url) {
  std::string_view rest = target;
  HostPort hp;
  if (is_url) {
    if (rest.substr(0, 7) != "http://") return Status::InvalidArgument("probe URL must start with http://");
    rest.remove_prefix(7);
    auto slash = rest.find('/');
    if (slash != std::string_view::npos) {
      hp.path = std::string(rest.substr(slash));
      rest = rest.substr(0, slash);
    }
  }
  std::string_view host, port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return Status::InvalidArgument("bad probe address " + target);
    host = rest.substr(1, close - 1);
    port = close + 2 <= rest.size() ? rest.substr(close + 2) : "";
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      if (!is_url) return Status::InvalidArgument("probe address needs a port: " + target);
      host = rest;
      port = "80";
    } else {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    }
  }
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535)
    return Status::InvalidArgument("bad port in probe address " + target);
  hp.host = host == "localhost" ? "127.0.0.1" : std::string(host);
  hp.port = static_cast<uint16_t>(p);
  return hp;
}

namespace {

// One TCP or HTTP attempt; owns its stream and keeps itself alive through its handlers.
struct NetAttempt : std::enable_shared_from_this<NetAttempt> {
  NetAttempt(asio::io_context& io, bool http, HostPort hp, std::function<void(Status)> done)
      : stream(io), http(http), hp(std::move(hp)), done(std::move(done)) {}

  void Start(asio::ip::tcp::endpoint ep, Duration timeout) {
    stream.expires_after(timeout);
    stream.async_connect(ep, [self = shared_from_this()](beast::error_code ec) { self->OnConnect(ec); });
  }

  void OnConnect(beast::error_code ec) {
    if (ec) return Finish(Status::Failed(Message(ec)));
    if (!http) return Finish(Status::Ok());
    req = {http::verb::get, hp.path, 11};
    req.set(http::field::host, hp.host + ":" + std::to_string(hp.port));
    req.set(http::field::user_agent, "batond-probe");
    req.set(http::field::connection, "close");
    http::async_write(stream, req, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Finish(Status::Failed(self->Message(ec)));
      http::async_read(self->stream, self->buffer, self->res, [self](beast::error_code ec, size_t) {
        if (ec) return self->Finish(Status::Failed(self->Message(ec)));
        unsigned code = self->res.result_int();
        if (code >= 200 && code < 300) return self->Finish(Status::Ok());
        self->Finish(Status::Failed("HTTP " + std::to_string(code)));
      });
    });
  }

  std::string Message(beast::error_code ec) const {
    return ec == beast::error::timeout ? std::string("timed out") : ec.message();
  }

  void Finish(Status s) {
    beast::error_code ignored;
    stream.socket().close(ignored);
    if (done) std::exchange(done, nullptr)(std::move(s));
  }

  beast::tcp_stream stream;
  bool http;
  HostPort hp;
  std::function<void(Status)> done;
  http::request<http::empty_body> req;
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
};

}  // namespace

void AsioProbeRunner::Run(const Probe& probe, Duration timeout, std::function<void(Status)> done) {
  if (probe.kind == Probe::Kind::kExec) return RunExec(probe, timeout, std::move(done));
  RunNet(probe, timeout, std::move(done));
}

void AsioProbeRunner::RunNet(const Probe& probe, Duration timeout, std::function<void(Status)> done) {
  bool is_http = probe.kind == Probe::Kind::kHttp;
  auto hp = ParseProbeTarget(probe.target, is_http);
  boost::system::error_code ec;
  asio::ip::address addr;
  if (hp.ok()) addr = asio::ip::make_address(hp->host, ec);
  if (!hp.ok() || ec) {
    Status s = hp.ok() ? Status::InvalidArgument("probe host must be a numeric IP: " + hp->host) : hp.status();
    asio::post(io_, [done = std::move(done), s] { done(s); });
    return;
  }
  auto attempt = std::make_shared<NetAttempt>(io_, is_http, *hp, std::move(done));
  attempt->Start(asio::ip::tcp::endpoint(addr, hp->port), timeout);
}

void AsioProbeRunner::RunExec(const Probe& probe, Duration timeout, std::function<void(Status)> done) {
  struct State {
    std::function<void(Status)> done;
    std::unique_ptr<asio::steady_timer> timer;
    std::string last_line;
    bool timed_out = false;
  };
  auto st = std::make_shared<State>();
  st->done = std::move(done);
  LaunchSpec spec;
  spec.tag = "probe";
  spec.argv = probe.argv;
  spec.env = probe.env;
  spec.log_output = false;
  ProcessEvents events;
  events.on_line = [st](OutputStream, std::string_view line) {
    if (!line.empty()) st->last_line = std::string(line.substr(0, 200));
  };
  events.on_exit = [st](const ExitInfo& exit) {
    st->timer.reset();
    if (exit.success()) return st->done(Status::Ok());
    std::string why = st->timed_out ? "timed out" : exit.Describe();
    if (!st->last_line.empty()) why += ": " + st->last_line;
    st->done(Status::Failed(why));
  };
  auto pid = launcher_.Launch(spec, std::move(events));
  if (!pid.ok()) {
    asio::post(io_, [st, s = pid.status()] { st->done(s); });
    return;
  }
  st->timer = std::make_unique<asio::steady_timer>(io_, timeout);
  st->timer->async_wait([this, st, p = *pid](const boost::system::error_code& ec) {
    if (ec) return;
    st->timed_out = true;
    launcher_.SignalGroup(p, SIGKILL);
  });
}

}  // namespace baton
