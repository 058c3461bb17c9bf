#include "ctl/format.h"

#include <ctime>
#include <iostream>

namespace baton::ctl {

namespace {

bool g_color = false;

std::string Paint(const char* code, const std::string& text) {
  return g_color ? std::string("\033[") + code + "m" + text + "\033[0m" : text;
}

size_t VisibleLength(const std::string& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\033') {
      while (i < s.size() && s[i] != 'm') ++i;
      continue;
    }
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++n;  // count UTF-8 code points
  }
  return n;
}

std::string Time(double t) {
  std::time_t at = static_cast<std::time_t>(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&at));
  return buf;
}

}  // namespace

void SetColor(bool enabled) { g_color = enabled; }

std::string State(const std::string& s) {
  if (s == "running" || s == "live" || s == "ready" || s == "promoted" || s == "up") return Paint("32", s);
  if (s == "failed" || s == "fatal" || s == "down") return Paint("31;1", s);
  if (s == "stopped" || s == "exited") return Paint("2", s);
  return Paint("33", s);  // starting, upgrading, baking, draining, stopping, backoff
}

std::string Bold(const std::string& t) { return Paint("1", t); }
std::string Dim(const std::string& t) { return Paint("2", t); }

void PrintTable(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size());
  for (size_t c = 0; c < headers.size(); ++c) width[c] = VisibleLength(headers[c]);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size() && c < width.size(); ++c) width[c] = std::max(width[c], VisibleLength(r[c]));
  auto line = [&](const std::vector<std::string>& cells, bool header) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      std::string cell = header ? Bold(cells[c]) : cells[c];
      out += cell;
      if (c + 1 < cells.size()) out += std::string(width[c] - VisibleLength(cells[c]) + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(headers, true);
  for (const auto& r : rows) line(r, false);
}

std::string Str(const nlohmann::json& j, const char* key, const std::string& fallback) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

std::string Age(double since) {
  if (since <= 0) return "-";
  long s = static_cast<long>(std::time(nullptr) - since);
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 172800) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.3fs" : "%.1fs", s);
  return buf;
}

static std::string LastHandover(const nlohmann::json& s) {
  if (!s.contains("last_handover")) return "-";
  const auto& h = s["last_handover"];
  bool ok = h.value("promoted", false);
  return Str(h, "kind") + " " + Str(h, "version") + " " + State(ok ? "promoted" : "failed");
}

void PrintStatus(const nlohmann::json& status) {
  const auto& d = status["daemon"];
  std::cout << "batond " << Str(d, "version") << ", pid " << Str(d, "pid") << ", up " << Age(d.value("started_at", 0.0))
            << ", config " << Str(d, "config") << "\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : status["services"]) {
    int ready = 0, total = 0;
    std::string gen = "-";
    for (const auto& g : s["generations"])
      if (g["state"] == "live") {
        gen = Str(g, "id");
        for (const auto& w : g["workers"]) {
          total += w["state"] != "exited" && w["state"] != "stopping";
          ready += w["state"] == "ready";
        }
      }
    std::string listen;
    for (const auto& l : s["listeners"])
      listen += (listen.empty() ? "" : " ") + Str(l, "name") + "=" + Str(l, "address") + " (" + Str(l, "mode") + ")";
    rows.push_back({Str(s, "name"), State(Str(s, "state")), Str(s, "version"), gen,
                    std::to_string(ready) + "/" + Str(s, "replicas"), listen.empty() ? "-" : listen, LastHandover(s)});
  }
  PrintTable({"SERVICE", "STATE", "VERSION", "GEN", "READY", "LISTEN", "LAST HANDOVER"}, rows);
  for (const auto& s : status["services"])
    if (s.contains("fatal_reason"))
      std::cout << "\n" << Str(s, "name") << ": " << State("fatal") << ": " << Str(s, "fatal_reason") << "\n";
  if (!status.contains("tunnels") || status["tunnels"].empty()) return;
  std::vector<std::vector<std::string>> tunnels;
  for (const auto& t : status["tunnels"])
    for (const auto& s : t["sessions"]) {
      std::string state = Str(s, "state");
      tunnels.push_back({Str(t, "name"), Str(s, "edge"), Str(t, "remote_bind") + " -> " + Str(t, "to"),
                         State(state) + (state == "up" ? " " + Age(s.value("connected_since", 0.0)) : ""),
                         Str(s, "channels_open"), Str(s, "reconnects"), Str(s, "last_error", "")});
    }
  std::cout << "\n";
  PrintTable({"TUNNEL", "EDGE", "FORWARD", "STATE", "OPEN", "RECONNECTS", "LAST ERROR"}, tunnels);
}

void PrintService(const nlohmann::json& s) {
  std::cout << Bold(Str(s, "name")) << "  " << State(Str(s, "state")) << "  version " << Str(s, "version")
            << "  replicas " << Str(s, "replicas") << "\n";
  for (const auto& l : s["listeners"]) {
    std::cout << "listen " << Str(l, "name") << "  " << Str(l, "address") << "  " << Str(l, "mode");
    // Kernel steering: where new connections go, by generation, and what waits in each queue.
    if (l.contains("steering") && l["steering"].is_object()) {
      std::string sockets;
      for (const auto& k : l["steering"]["sockets"]) {
        if (!k.contains("generation")) continue;
        sockets += (sockets.empty() ? "" : ", ") + std::string("gen ") + Str(k, "generation") + " " + Str(k, "weight") +
                   "%" + (k.value("queued", 0) > 0 ? " (" + Str(k, "queued") + " queued)" : "");
      }
      if (!sockets.empty()) std::cout << ": " << sockets;
    }
    std::cout << "\n";
  }
  if (s.contains("proxies"))
    for (const auto& p : s["proxies"])
      std::cout << "proxy  " << Str(p, "name") << "  " << Str(p, "address") << "  " << Str(p, "active") << " open, "
                << Str(p, "total") << " total, " << Str(p, "errors") << " errors"
                << (p.value("paused", false) ? ", paused (no backend ready, or max_connections)" : "") << "\n";
  if (s.contains("handover"))
    std::cout << "in progress: " << Str(s["handover"], "kind") << " to " << Str(s["handover"], "version")
              << " (generation " << Str(s["handover"], "generation") << ")\n";
  if (s.contains("last_handover")) {
    const auto& h = s["last_handover"];
    std::cout << "last handover: " << LastHandover(s) << " in " << Seconds(h.value("duration_s", 0.0));
    if (h.contains("reason")) std::cout << ": " << Str(h, "reason");
    std::cout << "\n";
  }
  if (s.contains("fatal_reason")) std::cout << State("fatal") << ": " << Str(s, "fatal_reason") << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : s["generations"])
    for (const auto& w : g["workers"]) {
      std::string pid = w.value("pid", 0) ? Str(w, "pid") : "-";
      std::string status = Str(w, "status", "");
      if (w.contains("backend_ports"))
        for (const auto& [name, port] : w["backend_ports"].items())
          status += (status.empty() ? "" : "; ") + std::string("port ") + name + "=" + port.dump();
      if (status.empty()) status = "-";
      rows.push_back({Str(g, "id"), Str(g, "version"), State(Str(g, "state")), Age(g.value("started_at", 0.0)),
                      Str(w, "id"), pid, State(Str(w, "state")), Str(w, "restarts"), Str(w, "last_exit"), status});
    }
  std::cout << "\n";
  PrintTable({"GEN", "VERSION", "STATE", "AGE", "WORKER", "PID", "STATE", "RESTARTS", "LAST EXIT", "STATUS"}, rows);
}

void PrintHistory(const nlohmann::json& history) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : history["releases"]) {
    std::string outcome = State(e.value("outcome", std::string("?")) == "promoted" ? "promoted" : "failed");
    rows.push_back({Time(e.value("at", 0.0)), Str(e, "generation"), Str(e, "version"), Str(e, "kind"), outcome,
                    Seconds(e.value("duration_s", 0.0)), Str(e, "reason", "")});
  }
  PrintTable({"WHEN", "GEN", "VERSION", "KIND", "OUTCOME", "TOOK", "REASON"}, rows);
}

void PrintEvent(const nlohmann::json& e, double started) {
  double t = e.value("time", 0.0);
  std::string when = started > 0 && t > 0 ? "+" + Seconds(t - started) : Time(t);
  std::string type = Str(e, "type");
  std::string painted = type;
  if (type == "failed" || type == "fatal" || type == "crashed" || type == "kill")
    painted = Paint("31;1", type);
  else if (type == "ready" || type == "promoted" || type == "drained")
    painted = Paint("32", type);
  std::cout << Dim(when) << "  " << Str(e, "service") << " gen " << Str(e, "generation") << " " << Str(e, "version", "")
            << "  " << painted << "  " << Str(e, "message", "") << std::endl;
}

void PrintLogLine(const nlohmann::json& l) {
  std::string stream = Str(l, "stream");
  std::cout << Dim(Time(l.value("time", 0.0))) << " " << Str(l, "version") << " " << Str(l, "pid") << " "
            << (stream == "stderr" ? Dim("err") : Dim("out")) << " " << Str(l, "line", "") << std::endl;
}

}  // namespace baton::ctl
