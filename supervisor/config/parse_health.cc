// [service.NAME.ready], [service.NAME.health] and [service.NAME.recycle]: when a worker is
// ready, whether it stays well, and when it is replaced anyway.
#include "supervisor/config/config_reader.h"

namespace baton {

Status ConfigReader::ProbeTargets(const toml::table& t, const std::string& prefix, std::optional<std::string>& http,
                                  std::optional<std::string>& tcp, std::vector<std::string>& exec) const {
  if (const toml::node* n = t.get("http")) {
    std::string url;
    if (auto s = String(t, prefix, "http", url); !s.ok()) return s;
    if (url.rfind("http://", 0) != 0) return Error(*n, prefix + ".http", "expected an http:// URL");
    http = url;
  }
  if (const toml::node* n = t.get("tcp")) {
    if (n->is_boolean()) {
      if (n->as_boolean()->get()) tcp = "127.0.0.1:{probe_port}";
    } else if (n->is_string()) {
      tcp = n->as_string()->get();
      if (tcp->rfind(':') == std::string::npos) return Error(*n, prefix + ".tcp", "expected \"HOST:PORT\"");
    } else {
      return Error(*n, prefix + ".tcp", "expected true or \"HOST:PORT\"");
    }
  }
  if (const toml::node* n = t.get("exec"))
    if (auto s = StringArray(*n, prefix + ".exec", exec, true); !s.ok()) return s;
  return Status::Ok();
}

Status ConfigReader::Ready(const toml::table& t, const std::string& prefix, ReadyConfig& r) const {
  if (auto s =
          CheckKeys(t, prefix, {"notify", "http", "tcp", "exec", "timeout", "interval", "probe_timeout", "min_uptime"});
      !s.ok())
    return s;
  if (auto s = Bool(t, prefix, "notify", r.notify); !s.ok()) return s;
  if (auto s = ProbeTargets(t, prefix, r.http, r.tcp, r.exec); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "timeout", r.timeout); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "interval", r.interval); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "probe_timeout", r.probe_timeout); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "min_uptime", r.min_uptime); !s.ok()) return s;
  if (r.interval < 10ms) return Error(*t.get("interval"), prefix + ".interval", "must be at least 10ms");
  if (r.timeout.count() == 0) return Error(*t.get("timeout"), prefix + ".timeout", "must be greater than 0");
  return Status::Ok();
}

Status ConfigReader::Health(const toml::table& t, const std::string& prefix, HealthConfig& h) const {
  if (auto s = CheckKeys(t, prefix, {"http", "tcp", "exec", "interval", "timeout", "failures", "watchdog"}); !s.ok())
    return s;
  if (auto s = ProbeTargets(t, prefix, h.http, h.tcp, h.exec); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "interval", h.interval); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "timeout", h.timeout); !s.ok()) return s;
  if (auto s = Int(t, prefix, "failures", h.failures, 1, 1000); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "watchdog", h.watchdog); !s.ok()) return s;
  if (h.interval < 10ms) return Error(*t.get("interval"), prefix + ".interval", "must be at least 10ms");
  if (h.timeout.count() == 0) return Error(*t.get("timeout"), prefix + ".timeout", "must be greater than 0");
  if (const toml::node* n = t.get("watchdog"); n && h.watchdog < 10ms)
    return Error(*n, prefix + ".watchdog", "must be at least 10ms");
  if (!h.enabled()) return Error(t, prefix, "needs a probe (http, tcp or exec) or a watchdog, or leave the table out");
  return Status::Ok();
}

Status ConfigReader::Recycle(const toml::table& t, const std::string& prefix, RecycleConfig& r) const {
  if (auto s = CheckKeys(t, prefix, {"max_memory", "max_age", "interval"}); !s.ok()) return s;
  if (auto s = Size(t, prefix, "max_memory", r.max_memory); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "max_age", r.max_age); !s.ok()) return s;
  if (auto s = Dur(t, prefix, "interval", r.interval); !s.ok()) return s;
  if (r.interval < 10ms) return Error(*t.get("interval"), prefix + ".interval", "must be at least 10ms");
  if (const toml::node* n = t.get("max_memory"); n && r.max_memory < (1u << 20))
    return Error(*n, prefix + ".max_memory", "must be at least 1M");
  if (const toml::node* n = t.get("max_age"); n && r.max_age < 1s)
    return Error(*n, prefix + ".max_age", "must be at least 1s");
  if (!r.enabled()) return Error(t, prefix, "needs max_memory or max_age, or leave the table out");
  return Status::Ok();
}

}  // namespace baton
