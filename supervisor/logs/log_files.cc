#include "supervisor/logs/log_files.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <ctime>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace baton {
namespace {

// %* in a pattern: the message as a JSON string, escaped.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string text = nlohmann::json(std::string(msg.payload.data(), msg.payload.size()))
                           .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};

std::unique_ptr<spdlog::formatter> Formatter(bool json, bool colour) {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  if (json)
    f->add_flag<JsonMessageFlag>('*').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","message":%*})");
  else
    f->set_pattern(colour ? "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v" : "%Y-%m-%dT%H:%M:%S.%e %l %v");
  return f;
}

Result<std::shared_ptr<spdlog::sinks::sink>> RotatingSink(const LogFileConfig& config) {
  try {
    return std::shared_ptr<spdlog::sinks::sink>(std::make_shared<spdlog::sinks::rotating_file_sink_st>(
        config.file, static_cast<size_t>(config.max_size), static_cast<size_t>(config.keep)));
  } catch (const spdlog::spdlog_ex& e) {
    return Status::Failed("log file " + config.file + ": " + e.what());
  }
}

// "2026-12-01T16:35:19.158" in local time, as batond's own lines start.
std::string LocalTime(double unix_seconds) {
  std::time_t secs = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  int ms = static_cast<int>(std::fmod(unix_seconds, 1.0) * 1000);
  char out[40];
  std::snprintf(out, sizeof out, "%s.%03d", buf, ms);
  return out;
}

}  // namespace

Result<std::unique_ptr<ServiceLogFile>> ServiceLogFile::Open(const LogFileConfig& config, bool json) {
  auto file = std::unique_ptr<ServiceLogFile>(new ServiceLogFile(config, json));
  if (Status s = file->Reopen(); !s.ok()) return s;
  return file;
}

Status ServiceLogFile::Reopen() {
  auto sink = RotatingSink(config_);
  if (!sink.ok()) return sink.status();
  (*sink)->set_pattern("%v");  // the line is formatted here, with the worker's own time
  logger_ = std::make_shared<spdlog::logger>("service-log", *sink);
  logger_->set_level(spdlog::level::trace);
  logger_->flush_on(spdlog::level::trace);
  return Status::Ok();
}

void ServiceLogFile::Write(const std::string& service, const LogLine& line) {
  if (json_) {
    logger_->info(line.ToJson(service).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  logger_->info("{} {} {} pid={} {}: {}", LocalTime(line.time), service, line.version, line.pid,
                line.stderr_stream ? "err" : "out", line.text);
}

Status SetUpDaemonLog(const DaemonConfig& daemon) {
  auto stderr_sink = std::make_shared<spdlog::sinks::stderr_color_sink_st>();
  stderr_sink->set_formatter(Formatter(daemon.log_json, true));
  std::vector<spdlog::sink_ptr> sinks{stderr_sink};
  Status opened = Status::Ok();
  if (!daemon.log.file.empty()) {
    auto file = RotatingSink(daemon.log);
    if (file.ok()) {
      (*file)->set_formatter(Formatter(daemon.log_json, false));
      sinks.push_back(*file);
    } else {
      opened = file.status();
    }
  }
  spdlog::drop("batond");
  auto logger = std::make_shared<spdlog::logger>("batond", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::from_str(daemon.log_level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  if (!opened.ok()) spdlog::error("{}; logging to stderr alone", opened.message());
  return opened;
}

}  // namespace baton
