// The log files batond writes, rotated by size with spdlog's rotating sink (web.1.log is
// the one before web.log, up to web.KEEP.log): each service's worker output ([service.X.log]), tagged as
// in batond's own log, and batond's own log ([daemon] log_file) besides stderr. Either is
// text or, with log_format = "json", one JSON object per line. Reopen() opens the files
// again by name, for logrotate (SIGUSR1). Loop thread only.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "supervisor/base/status.h"
#include "supervisor/config/config.h"
#include "supervisor/logs/log_buffer.h"

namespace baton {

class ServiceLogFile {
 public:
  // Fails, naming the file, when it cannot be opened.
  static Result<std::unique_ptr<ServiceLogFile>> Open(const LogFileConfig& config, bool json);
  void Write(const std::string& service, const LogLine& line);
  Status Reopen();
  const LogFileConfig& config() const { return config_; }
  bool json() const { return json_; }

 private:
  ServiceLogFile(LogFileConfig config, bool json) : config_(std::move(config)), json_(json) {}
  LogFileConfig config_;
  bool json_;
  std::shared_ptr<spdlog::logger> logger_;
};

// batond's own logger: stderr, and the file `daemon.log` names, as text or JSON, at
// `daemon.log_level`. Called again, it opens the file anew (SIGUSR1, a reload). When the
// file cannot be opened, batond logs to stderr alone and the error says why.
Status SetUpDaemonLog(const DaemonConfig& daemon);

}  // namespace baton
