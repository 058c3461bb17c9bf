// Reading baton.toml into Config: every error names FILE:LINE:COL and the dotted key, and
// unknown keys are errors, so a typo never silently falls back to a default. Internal to
// config/: the field readers (config_reader.cc), [service.NAME] (parse_service.cc), and
// [daemon], [tunnel.NAME] and the checks across tables (parse.cc).
#pragma once

#include <toml++/toml.h>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "supervisor/base/status.h"
#include "supervisor/config/config.h"

namespace baton {

class ConfigReader {
 public:
  explicit ConfigReader(std::string path) : path_(std::move(path)) {}
  Result<Config> Parse(std::string_view text) const;

 private:
  // Field readers: each checks the type and range and names the key in its error.
  Status Error(const toml::source_region& where, const std::string& key, const std::string& msg) const;
  Status Error(const toml::node& node, const std::string& key, const std::string& msg) const;
  Status CheckKeys(const toml::table& table, const std::string& prefix, const std::set<std::string>& allowed) const;
  static std::string Join(const std::string& prefix, std::string_view key);
  Status String(const toml::table& t, const std::string& prefix, std::string_view key, std::string& out) const;
  Status Int(const toml::table& t, const std::string& prefix, std::string_view key, int& out, long min, long max) const;
  Status Bool(const toml::table& t, const std::string& prefix, std::string_view key, bool& out) const;
  Status Float(const toml::table& t, const std::string& prefix, std::string_view key, double& out, double min) const;
  Status Dur(const toml::table& t, const std::string& prefix, std::string_view key, Duration& out) const;
  // A size in bytes: an integer, or a string such as "512K", "100M", "1G" (powers of 1024;
  // "MB" and "MiB" say the same), from 1 byte to 1 TiB.
  Status Size(const toml::table& t, const std::string& prefix, std::string_view key, uint64_t& out) const;
  // A log file: FILE_KEY, SIZE_KEY, KEEP_KEY of `t`.
  Status LogFile(const toml::table& t, const std::string& prefix, const char* file_key, const char* size_key,
                 const char* keep_key, LogFileConfig& out) const;
  Status StringArray(const toml::node& n, const std::string& key, std::vector<std::string>& out, bool non_empty) const;
  // A user or group given by number must be a valid id: read unchecked, "4294967296" wrapped
  // to 0 and a worker ran as root.
  Status AccountIds(const toml::table& t, const std::string& prefix, std::string_view key) const;
  Status IdList(const toml::table& t, const std::string& key, std::vector<unsigned>& out) const;

  // [daemon], [tunnel.NAME], and the checks that need the whole file.
  Status Daemon(const toml::table& t, DaemonConfig& d) const;
  Result<SocketAddress> TcpAddress(const toml::node& n, const std::string& key) const;
  Status Web(const toml::table& t, DaemonConfig& d) const;
  Status Tunnel(const std::string& name, const toml::node& node, TunnelConfig& t) const;
  // "host:port" or "[v6]:port"; the port may be 0 (checked by the caller where it matters).
  static std::optional<std::pair<std::string, int>> HostPort(const std::string& text);
  Status Validate(const toml::table& root, Config& cfg) const;
  Status Hooks(const toml::table& t, const std::string& prefix, HooksConfig& h) const;
  Status CheckStartOrder(const toml::table& root, const Config& cfg) const;

  // [service.NAME] and its sub-tables.
  Status Listeners(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const;
  // steering = "kernel" (the default for tcp, tcp6 and udp) or "shared" (the only choice
  // for unix and systemd:NAME: one socket that batond did not bind per generation).
  Status Steering(const toml::table* t, const std::string& key, ListenerConfig& l) const;
  Status ProxyOptions(const toml::table& t, const std::string& key, ListenerConfig& l) const;
  Status Ready(const toml::table& t, const std::string& prefix, ReadyConfig& r) const;
  Status Health(const toml::table& t, const std::string& prefix, HealthConfig& h) const;
  Status Recycle(const toml::table& t, const std::string& prefix, RecycleConfig& r) const;
  // http, tcp and exec of a [ready] or [health] table.
  Status ProbeTargets(const toml::table& t, const std::string& prefix, std::optional<std::string>& http,
                      std::optional<std::string>& tcp, std::vector<std::string>& exec) const;
  Status Stop(const toml::table& t, const std::string& prefix, StopConfig& st) const;
  Status Rollout(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const;
  Status Limits(const toml::table& t, const std::string& prefix, LimitsConfig& l) const;
  Status Restart(const toml::table& t, const std::string& prefix, RestartConfig& r) const;
  Status CheckTemplates(const toml::table& t, const std::string& prefix, const ServiceConfig& svc) const;
  Status Service(const std::string& name, const toml::node& node, ServiceConfig& svc) const;
  Status Account(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const;
  Status ServiceEnv(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const;
  Status SubTables(const toml::table& t, const std::string& prefix, ServiceConfig& svc) const;

  std::string path_;
};

}  // namespace baton
