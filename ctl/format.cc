#include "ctl/format.h"

#include <ctime>

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
  switch (MeaningOfState(s)) {
    case StateMeaning::kServing: return Paint("32", s);
    case StateMeaning::kFailed: return Paint("31;1", s);
    case StateMeaning::kAtRest: return Paint("2", s);
    case StateMeaning::kTransition: break;
  }
  return Paint("33", s);
}

std::string Bold(const std::string& t) { return Paint("1", t); }
std::string Dim(const std::string& t) { return Paint("2", t); }

std::string Table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size());
  for (size_t c = 0; c < headers.size(); ++c) width[c] = VisibleLength(headers[c]);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size() && c < width.size(); ++c) width[c] = std::max(width[c], VisibleLength(r[c]));
  std::string out;
  auto line = [&](const std::vector<std::string>& cells, bool header) {
    for (size_t c = 0; c < cells.size(); ++c) {
      out += header ? Bold(cells[c]) : cells[c];
      if (c + 1 < cells.size()) out += std::string(width[c] - VisibleLength(cells[c]) + 2, ' ');
    }
    out += "\n";
  };
  line(headers, true);
  for (const auto& r : rows) line(r, false);
  return out;
}

const nlohmann::json& Get(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string Str(const nlohmann::json& j, const char* key, const std::string& fallback) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

// "db, cache" from a JSON array of names.
std::string Names(const nlohmann::json& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + (n.is_string() ? n.get<std::string>() : n.dump());
  return out;
}

std::string Age(double since, double now) {
  if (since <= 0) return "-";
  long s = static_cast<long>(now - since);
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
  const auto& h = Get(s, "last_handover");
  bool ok = Value(h, "promoted", false);
  return Str(h, "kind") + " " + Str(h, "version") + " " + State(ok ? "promoted" : "failed");
}

std::string FormatStatus(const nlohmann::json& status, double now) {
  const auto& d = Get(status, "daemon");
  std::string out = "batond " + Str(d, "version") + ", pid " + Str(d, "pid") + ", up " +
                    Age(Value(d, "started_at", 0.0), now) + ", config " + Str(d, "config") + "\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : Get(status, "services")) {
    int ready = 0, total = 0;
    std::string gen = "-";
    for (const auto& g : Get(s, "generations"))
      if (Get(g, "state") == "live") {
        gen = Str(g, "id");
        for (const auto& w : Get(g, "workers")) {
          total += Get(w, "state") != "exited" && Get(w, "state") != "stopping";
          ready += Get(w, "state") == "ready";
        }
      }
    std::string listen;
    for (const auto& l : Get(s, "listeners"))
      listen += (listen.empty() ? "" : " ") + Str(l, "name") + "=" + Str(l, "address") + " (" + Str(l, "mode") + ")";
    rows.push_back({Str(s, "name"), State(Str(s, "state")), Str(s, "version"), gen,
                    std::to_string(ready) + "/" + Str(s, "replicas"), listen.empty() ? "-" : listen, LastHandover(s)});
  }
  out += Table({"SERVICE", "STATE", "VERSION", "GEN", "READY", "LISTEN", "LAST HANDOVER"}, rows);
  for (const auto& s : Get(status, "services"))
    if (s.contains("fatal_reason"))
      out += "\n" + Str(s, "name") + ": " + State("fatal") + ": " + Str(s, "fatal_reason") + "\n";
    else if (s.contains("waiting_for"))
      out += "\n" + Str(s, "name") + ": " + State("waiting") + " for " + Names(Get(s, "waiting_for")) + " to be live\n";
  if (!status.contains("tunnels") || Get(status, "tunnels").empty()) return out;
  std::vector<std::vector<std::string>> tunnels;
  for (const auto& t : Get(status, "tunnels"))
    for (const auto& s : Get(t, "sessions")) {
      std::string state = Str(s, "state");
      tunnels.push_back({Str(t, "name"), Str(s, "edge"), Str(t, "remote_bind") + " -> " + Str(t, "to"),
                         State(state) + (state == "up" ? " " + Age(Value(s, "connected_since", 0.0), now) : ""),
                         Str(s, "channels_open"), Str(s, "reconnects"), Str(s, "last_error", "")});
    }
  return out + "\n" + Table({"TUNNEL", "EDGE", "FORWARD", "STATE", "OPEN", "RECONNECTS", "LAST ERROR"}, tunnels);
}

namespace {

// "listen NAME ADDRESS MODE", and with kernel steering where new connections go, by
// generation, and what waits in each queue.
std::string ListenerLine(const nlohmann::json& l) {
  std::string out = "listen " + Str(l, "name") + "  " + Str(l, "address") + "  " + Str(l, "mode");
  if (l.contains("steering") && Get(l, "steering").is_object()) {
    std::string sockets;
    for (const auto& k : Get(Get(l, "steering"), "sockets")) {
      if (!k.contains("generation")) continue;
      sockets += (sockets.empty() ? "" : ", ") + std::string("gen ") + Str(k, "generation") + " " + Str(k, "weight") +
                 "%" + (Value(k, "queued", 0) > 0 ? " (" + Str(k, "queued") + " queued)" : "");
    }
    if (!sockets.empty()) out += ": " + sockets;
  }
  return out + "\n";
}

std::string WorkerTable(const nlohmann::json& s, double now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : Get(s, "generations"))
    for (const auto& w : Get(g, "workers")) {
      std::string pid = Value(w, "pid", 0) ? Str(w, "pid") : "-";
      std::string status = Str(w, "status", "");
      auto add = [&](const std::string& part) { status += (status.empty() ? "" : "; ") + part; };
      if (w.contains("backend_ports"))
        for (const auto& [name, port] : Get(w, "backend_ports").items()) add("port " + name + "=" + port.dump());
      if (w.contains("health")) {
        const auto& h = Get(w, "health");
        std::string last = Str(h, "last_result", "");
        if (!last.empty())
          add("health " + (last == "ok" ? last : last + ", " + Str(h, "consecutive_failures") + " in a row"));
      }
      if (Value(w, "unhealthy", false)) add("unhealthy");
      if (w.contains("replaces"))
        add("replaces worker " + Str(Get(w, "replaces"), "worker") + " (" + Str(Get(w, "replaces"), "cause") + ")");
      if (w.contains("replaced_by")) add("being replaced by worker " + Str(w, "replaced_by"));
      if (uint64_t rss = Value(w, "rss_bytes", uint64_t{0}); rss > 0) add(std::to_string(rss >> 20) + " MiB");
      if (status.empty()) status = "-";
      rows.push_back({Str(g, "id"), Str(g, "version"), State(Str(g, "state")), Age(Value(g, "started_at", 0.0), now),
                      Str(w, "id"), pid, State(Str(w, "state")), Str(w, "restarts"), Str(w, "last_exit"), status});
    }
  return Table({"GEN", "VERSION", "STATE", "AGE", "WORKER", "PID", "STATE", "RESTARTS", "LAST EXIT", "STATUS"}, rows);
}

}  // namespace

std::string FormatService(const nlohmann::json& s, double now) {
  std::string out = Bold(Str(s, "name")) + "  " + State(Str(s, "state")) + "  version " + Str(s, "version") +
                    "  replicas " + Str(s, "replicas") + "\n";
  for (const auto& l : Get(s, "listeners")) out += ListenerLine(l);
  if (s.contains("proxies"))
    for (const auto& p : Get(s, "proxies"))
      out += "proxy  " + Str(p, "name") + "  " + Str(p, "address") + "  " + Str(p, "active") + " open, " +
             Str(p, "total") + " total, " + Str(p, "errors") + " errors" +
             (Value(p, "paused", false) ? ", paused (no backend ready, or max_connections)" : "") + "\n";
  if (s.contains("handover"))
    out += "in progress: " + Str(Get(s, "handover"), "kind") + " to " + Str(Get(s, "handover"), "version") +
           " (generation " + Str(Get(s, "handover"), "generation") + ")\n";
  if (s.contains("last_handover")) {
    const auto& h = Get(s, "last_handover");
    out += "last handover: " + LastHandover(s) + " in " + Seconds(Value(h, "duration_s", 0.0));
    if (h.contains("reason")) out += ": " + Str(h, "reason");
    out += "\n";
  }
  if (s.contains("fatal_reason")) out += State("fatal") + ": " + Str(s, "fatal_reason") + "\n";
  if (s.contains("waiting_for")) out += State("waiting") + " for " + Names(Get(s, "waiting_for")) + " to be live\n";
  return out + "\n" + WorkerTable(s, now);
}

std::string FormatHistory(const nlohmann::json& history) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : Get(history, "releases")) {
    std::string outcome = State(Value(e, "outcome", std::string("?")) == "promoted" ? "promoted" : "failed");
    std::string replaced;
    if (e.contains("replacements") && Get(e, "replacements").is_object())
      for (const auto& [cause, n] : Get(e, "replacements").items())
        replaced += (replaced.empty() ? "" : ", ") + n.dump() + " " + cause;
    rows.push_back({Time(Value(e, "at", 0.0)), Str(e, "generation"), Str(e, "version"), Str(e, "kind"), outcome,
                    Seconds(Value(e, "duration_s", 0.0)), replaced.empty() ? "-" : replaced, Str(e, "reason", "")});
  }
  return Table({"WHEN", "GEN", "VERSION", "KIND", "OUTCOME", "TOOK", "REPLACED", "REASON"}, rows);
}

std::string FormatEvent(const ServiceEvent& e, double started) {
  std::string when = started > 0 && e.time > 0 ? "+" + Seconds(e.time - started) : Time(e.time);
  std::string type = EventTypeName(e.type);
  std::string painted = IsTrouble(e.type) ? Paint("31;1", type)
                        : e.type == EventType::kReady || e.type == EventType::kPromoted || e.type == EventType::kDrained
                            ? Paint("32", type)
                            : type;
  return Dim(when) + "  " + e.service + " gen " + (e.generation ? std::to_string(e.generation) : "-") + " " +
         e.version + "  " + painted + "  " + e.message + "\n";
}

std::string FormatLogLine(const nlohmann::json& l) {
  std::string stream = Str(l, "stream");
  return Dim(Time(Value(l, "time", 0.0))) + " " + Str(l, "version") + " " + Str(l, "pid") + " " +
         (stream == "stderr" ? Dim("err") : Dim("out")) + " " + Str(l, "line", "") + "\n";
}

std::string FormatReload(const nlohmann::json& r) {
  std::string out;
  for (const char* key : {"added", "removed", "restarting", "unchanged"})
    if (r.contains(key) && !r[key].empty()) out += std::string(key) + ": " + r[key].dump() + "\n";
  for (const auto& c : Value(r, "changed", nlohmann::json::array()))
    out += "changed: " + Str(c, "service") + " " + Get(c, "keys").dump() + "\n";
  for (const auto& w : Value(r, "warnings", nlohmann::json::array())) out += "warning: " + w.get<std::string>() + "\n";
  return out;
}

std::string FormatOutcome(const HandoverResult& r) {
  if (!r.promoted)
    return State("failed") + ": " + r.version + " was not promoted: " + r.reason + "\n" +
           (r.from_version.empty() ? "nothing" : r.from_version) + " is still serving\n";
  std::string out = State("promoted") + " " + r.version + " (generation " + std::to_string(r.generation) + ") in " +
                    Seconds(r.duration_s);
  if (r.drain_s) out += "; " + r.from_version + " drained in " + Seconds(*r.drain_s);
  return out + "\n";
}

}  // namespace baton::ctl
