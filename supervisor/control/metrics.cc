#include "supervisor/control/metrics.h"

#include <cstdio>
#include <map>
#include <sstream>

namespace baton {

namespace {

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Writer {
 public:
  void Family(const char* name, const char* type, const char* help) {
    out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  void Sample(const char* name, const std::map<std::string, std::string>& labels, double value) {
    out_ << name;
    if (!labels.empty()) {
      out_ << "{";
      bool first = true;
      for (const auto& [k, v] : labels) {
        out_ << (first ? "" : ",") << k << "=\"" << Escape(v) << "\"";
        first = false;
      }
      out_ << "}";
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.15g", value);
    out_ << " " << buf << "\n";
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

double Num(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0;
}

// A family whose samples are one field of each object listed (proxies, tunnel sessions).
struct FieldFamily {
  const char* metric;
  const char* key;
  const char* type;
  const char* help;
};

void DaemonMetrics(Writer& w, const nlohmann::json& d) {
  w.Family("baton_daemon_uptime_seconds", "gauge", "Seconds since batond started.");
  w.Sample("baton_daemon_uptime_seconds", {}, Num(d, "uptime_s"));
  w.Family("baton_daemon_open_fds", "gauge", "File descriptors batond holds open.");
  w.Sample("baton_daemon_open_fds", {}, Num(d, "open_fds"));
  w.Family("baton_daemon_resident_memory_bytes", "gauge", "batond's resident set size.");
  w.Sample("baton_daemon_resident_memory_bytes", {}, Num(d, "rss_bytes"));
  w.Family("baton_daemon_notify_ignored_total", "counter", "sd_notify messages from pids that are no worker.");
  w.Sample("baton_daemon_notify_ignored_total", {}, Num(d, "notify_ignored"));
  w.Family("baton_daemon_control_refused_total", "counter", "Control connections refused by the peer check.");
  w.Sample("baton_daemon_control_refused_total", {}, Num(d, "control_refused"));
  w.Family("baton_daemon_control_shed_total", "counter", "Control connections answered 503 near the open-file limit.");
  w.Sample("baton_daemon_control_shed_total", {}, Num(d, "control_shed"));
  w.Family("baton_daemon_handler_exceptions_total", "counter", "Event handlers that threw (bugs the loop survived).");
  w.Sample("baton_daemon_handler_exceptions_total", {}, Num(d, "handler_exceptions"));
  w.Family("baton_daemon_self_upgrades_total", "counter",
           "Self-upgrades attempted (the program replaced or handed back).");
  w.Sample("baton_daemon_self_upgrades_total", {}, d.contains("self_upgrade") ? Num(d["self_upgrade"], "attempts") : 0);
}

void ServiceMetrics(Writer& w, const nlohmann::json& services) {
  w.Family("baton_service_up", "gauge", "1 if the service has a live generation.");
  for (const auto& s : services) w.Sample("baton_service_up", {{"service", s["name"]}}, s["version"].is_null() ? 0 : 1);
  w.Family("baton_service_info", "gauge", "The live version and the service state, as labels.");
  for (const auto& s : services)
    w.Sample("baton_service_info",
             {{"service", s["name"]},
              {"version", s["version"].is_string() ? s["version"].get<std::string>() : ""},
              {"state", s["state"]}},
             1);
  w.Family("baton_service_generation", "gauge", "Id of the live generation (0 if none).");
  w.Family("baton_service_workers", "gauge", "Workers by state, across the service's generations.");
  for (const auto& s : services) {
    double live_id = 0;
    std::map<std::string, int> by_state;
    for (const auto& g : s["generations"]) {
      if (g["state"] == "live") live_id = g["id"].get<double>();
      for (const auto& wk : g["workers"]) by_state[wk["state"]]++;
    }
    w.Sample("baton_service_generation", {{"service", s["name"]}}, live_id);
    for (const char* st : {"starting", "ready", "stopping", "backoff", "exited"})
      w.Sample("baton_service_workers", {{"service", s["name"]}, {"state", st}}, by_state[st]);
  }
  w.Family("baton_service_handovers_total", "counter", "Handovers by outcome since batond started.");
  for (const auto& s : services) {
    w.Sample("baton_service_handovers_total", {{"service", s["name"]}, {"outcome", "promoted"}},
             Num(s["counters"], "handovers_promoted"));
    w.Sample("baton_service_handovers_total", {{"service", s["name"]}, {"outcome", "failed"}},
             Num(s["counters"], "handovers_failed"));
  }
  w.Family("baton_service_restarts_total", "counter", "Crash restarts of workers since batond started.");
  for (const auto& s : services)
    w.Sample("baton_service_restarts_total", {{"service", s["name"]}}, Num(s["counters"], "restarts"));
  w.Family("baton_service_hook_failures_total", "counter", "Hooks that failed or timed out since batond started.");
  for (const auto& s : services)
    w.Sample("baton_service_hook_failures_total", {{"service", s["name"]}}, Num(s["counters"], "hook_failures"));
  w.Family("baton_service_health_failures_total", "counter",
           "Rounds of health probes that failed, over every worker, since batond started.");
  for (const auto& s : services)
    w.Sample("baton_service_health_failures_total", {{"service", s["name"]}}, Num(s["counters"], "health_failures"));
  w.Family("baton_service_replacements_total", "counter",
           "Workers replaced without a drop (a fresh worker ready before the old one stops), by cause.");
  for (const auto& s : services)
    for (const char* cause : {"health", "memory", "age", "operator"})
      w.Sample("baton_service_replacements_total", {{"service", s["name"]}, {"cause", cause}},
               Num(s["counters"].value("replacements", nlohmann::json::object()), cause));
  w.Family("baton_service_replace_failures_total", "counter",
           "Replacements whose fresh worker did not get ready (the old one carried on).");
  for (const auto& s : services)
    w.Sample("baton_service_replace_failures_total", {{"service", s["name"]}}, Num(s["counters"], "replace_failures"));
  w.Family("baton_service_last_handover_seconds", "gauge", "Duration of the last handover.");
  for (const auto& s : services)
    w.Sample("baton_service_last_handover_seconds", {{"service", s["name"]}},
             Num(s["counters"], "last_handover_seconds"));
  w.Family("baton_service_fatal", "gauge", "1 if the service stopped restarting after repeated failures.");
  for (const auto& s : services)
    w.Sample("baton_service_fatal", {{"service", s["name"]}}, s["state"] == "fatal" ? 1 : 0);
}

// Progressive handovers in progress: the step, the new generation's share, and what the
// step has seen so far (samples only while one runs).
void ProgressiveMetrics(Writer& w, const nlohmann::json& services) {
  w.Family("baton_service_progressive_step", "gauge", "Step of the progressive handover under way (1-based).");
  w.Family("baton_service_progressive_weight_percent", "gauge", "Share of new connections the new generation gets.");
  w.Family("baton_service_progressive_step_connections", "gauge",
           "This step's connections to the new generation, by outcome.");
  for (const auto& s : services) {
    if (!s.contains("handover") || !s["handover"].contains("progressive")) continue;
    const auto& p = s["handover"]["progressive"];
    w.Sample("baton_service_progressive_step", {{"service", s["name"]}}, Num(p, "step"));
    w.Sample("baton_service_progressive_weight_percent", {{"service", s["name"]}}, Num(p, "weight"));
    for (const char* k : {"connections", "failures", "resets"})
      w.Sample("baton_service_progressive_step_connections", {{"service", s["name"]}, {"kind", k}},
               Num(p["this_step"], k));
  }
}

// How each listener's connections reach the workers, and for kernel steering the share of
// new connections and the accept queue of each generation's socket.
void ListenerMetrics(Writer& w, const nlohmann::json& services) {
  w.Family("baton_listener_info", "gauge", "1 for each listener, with its mode: kernel, shared or proxy.");
  for (const auto& s : services)
    for (const auto& l : s.value("listeners", nlohmann::json::array()))
      w.Sample("baton_listener_info", {{"service", s["name"]}, {"listener", l["name"]}, {"mode", l.value("mode", "")}},
               1);
  w.Family("baton_listener_weight_percent", "gauge", "Kernel steering: share of new connections per generation.");
  w.Family("baton_listener_queued", "gauge", "Kernel steering: connections in a generation's accept queue.");
  for (const auto& s : services)
    for (const auto& l : s.value("listeners", nlohmann::json::array())) {
      if (!l.contains("steering") || !l["steering"].is_object()) continue;
      for (const auto& k : l["steering"]["sockets"]) {
        if (!k.contains("generation")) continue;
        std::map<std::string, std::string> labels = {
            {"service", s["name"]}, {"listener", l["name"]}, {"generation", k["generation"].dump()}};
        w.Sample("baton_listener_weight_percent", labels, Num(k, "weight"));
        w.Sample("baton_listener_queued", labels, Num(k, "queued"));
      }
    }
}

void ProxyMetrics(Writer& w, const nlohmann::json& services) {
  static constexpr FieldFamily kProxy[] = {
      {"baton_proxy_connections", "active", "gauge", "Proxied connections open now."},
      {"baton_proxy_connections_total", "total", "counter", "Connections accepted by the proxy."},
      {"baton_proxy_errors_total", "errors", "counter", "Connections closed because no backend could be reached."},
      {"baton_proxy_retries_total", "retries", "counter", "Backend connection attempts that failed and were retried."},
      {"baton_proxy_resets_total", "resets", "counter", "Resets passed on from one side to the other."},
      {"baton_proxy_idle_closed_total", "idle_closed", "counter", "Connections closed by idle_timeout."},
      {"baton_proxy_received_bytes_total", "bytes_in", "counter", "Bytes from clients to backends."},
      {"baton_proxy_sent_bytes_total", "bytes_out", "counter", "Bytes from backends to clients."},
  };
  for (const auto& f : kProxy) {
    w.Family(f.metric, f.type, f.help);
    for (const auto& s : services)
      if (s.contains("proxies"))
        for (const auto& p : s["proxies"])
          w.Sample(f.metric, {{"service", s["name"]}, {"listener", p["name"]}}, Num(p, f.key));
  }
}

void TunnelMetrics(Writer& w, const nlohmann::json& status) {
  static constexpr FieldFamily kTunnel[] = {
      {"baton_tunnel_channels_open", "channels_open", "gauge", "Forwarded connections open through the session."},
      {"baton_tunnel_channels_total", "channels_total", "counter", "Forwarded connections since batond started."},
      {"baton_tunnel_reconnects_total", "reconnects", "counter", "Times the session connected again after a loss."},
      {"baton_tunnel_received_bytes_total", "bytes_in", "counter", "Bytes from the edge to the listener."},
      {"baton_tunnel_sent_bytes_total", "bytes_out", "counter", "Bytes from the listener to the edge."},
  };
  const nlohmann::json tunnels = status.value("tunnels", nlohmann::json::array());
  w.Family("baton_tunnel_up", "gauge", "1 if the session to the edge is up and forwarding.");
  for (const auto& t : tunnels)
    for (const auto& s : t["sessions"])
      w.Sample("baton_tunnel_up", {{"tunnel", t["name"]}, {"edge", s["edge"]}}, s["state"] == "up" ? 1 : 0);
  for (const auto& f : kTunnel) {
    w.Family(f.metric, f.type, f.help);
    for (const auto& t : tunnels)
      for (const auto& s : t["sessions"])
        w.Sample(f.metric, {{"tunnel", t["name"]}, {"edge", s["edge"]}}, Num(s, f.key));
  }
}

}  // namespace

std::string RenderMetrics(const nlohmann::json& status) {
  Writer w;
  DaemonMetrics(w, status["daemon"]);
  const auto& services = status["services"];
  ServiceMetrics(w, services);
  ProgressiveMetrics(w, services);
  ListenerMetrics(w, services);
  ProxyMetrics(w, services);
  TunnelMetrics(w, status);
  return w.str();
}

}  // namespace baton
