// Self-upgrade: a proxy's open connections, with the bytes in flight in their pipes, are
// exported to the next program and adopted there without a byte lost.
#include <fcntl.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "supervisor/base/log.h"
#include "supervisor/proxy/proxy_connection.h"

namespace baton {

nlohmann::json ProxyListener::Export(std::vector<int>* keep) {
  auto fd = [keep](int n) {
    if (n >= 0) keep->push_back(n);
    return n;
  };
  auto flow = [&](Flow& f) {
    return nlohmann::json{{"pipe_read", fd(f.pipe_read.get())},
                          {"pipe_write", fd(f.pipe_write.get())},
                          {"in_pipe", f.in_pipe},
                          {"eof", f.eof},
                          {"done", f.done}};
  };
  nlohmann::json connections = nlohmann::json::array();
  for (auto& [id, c] : connections_) {
    nlohmann::json j = {{"client", fd(c->client.get())},
                        {"generation", c->route.generation},
                        {"port", c->route.port},
                        {"connected", c->connected},
                        {"answered", c->answered}};
    if (c->connected) {
      j["backend"] = fd(c->backend.get());
      j["up"] = flow(c->up);
      j["down"] = flow(c->down);
    }
    connections.push_back(std::move(j));
  }
  const ProxyCounters& k = counters_;
  return {{"connections", std::move(connections)},
          {"counters",
           {{"total", k.total},
            {"errors", k.errors},
            {"retries", k.retries},
            {"resets", k.resets},
            {"idle_closed", k.idle_closed},
            {"bytes_in", k.bytes_in},
            {"bytes_out", k.bytes_out}}}};
}

Status ProxyListener::Adopt(const nlohmann::json& carried) {
  try {
    const auto& k = carried.at("counters");
    counters_.total += k.value("total", uint64_t{0});
    counters_.errors += k.value("errors", uint64_t{0});
    counters_.retries += k.value("retries", uint64_t{0});
    counters_.resets += k.value("resets", uint64_t{0});
    counters_.idle_closed += k.value("idle_closed", uint64_t{0});
    counters_.bytes_in += k.value("bytes_in", uint64_t{0});
    counters_.bytes_out += k.value("bytes_out", uint64_t{0});
    for (const auto& j : carried.at("connections")) {
      int client = j.at("client").get<int>();
      auto c = std::make_unique<Connection>(io_, client);
      c->id = next_id_++;
      c->route = ProxyRoute{j.at("generation").get<int64_t>(), j.at("port").get<int>()};
      c->answered = j.at("answered").get<bool>();
      counters_.active++;
      per_generation_[c->route.generation]++;
      if (!c->answered) unanswered_[c->route.generation]++;
      Connection& ref = *c;
      connections_.emplace(c->id, std::move(c));
      if (Status s = edges_.Add(client, ClientKey(ref.id)); !s.ok()) {
        spdlog::warn("proxy {}: a carried connection: {}; closing it", name_, s.message());
        Close(ref.id, true, false);
        continue;
      }
      if (!j.at("connected").get<bool>()) {
        // The backend had not accepted yet: connect again, as the first attempt.
        socklen_t len = sizeof ref.client_addr;
        ::getpeername(client, reinterpret_cast<sockaddr*>(&ref.client_addr), &len);
        len = sizeof ref.local_addr;
        ::getsockname(client, reinterpret_cast<sockaddr*>(&ref.local_addr), &len);
        Connect(ref);
        continue;
      }
      ref.backend.Reset(j.at("backend").get<int>());
      ref.connected = true;
      for (auto [flow, key] : {std::pair{&ref.up, "up"}, std::pair{&ref.down, "down"}}) {
        const auto& f = j.at(key);
        flow->pipe_read.Reset(f.at("pipe_read").get<int>());
        flow->pipe_write.Reset(f.at("pipe_write").get<int>());
        flow->in_pipe = f.at("in_pipe").get<size_t>();
        flow->eof = f.at("eof").get<bool>();
        flow->done = f.at("done").get<bool>();
      }
      if (Status s = edges_.Add(ref.backend.get(), BackendKey(ref.id)); !s.ok()) {
        spdlog::warn("proxy {}: a carried connection: {}; closing it", name_, s.message());
        Close(ref.id, true, true);
        continue;
      }
      StartFlows(ref);
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument("proxy " + name_ + ": " + e.what());
  }
  return Status::Ok();
}

}  // namespace baton
