#include "supervisor/base/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace baton {

void InitLogging(std::string_view level) {
  spdlog::drop("batond");  // may be called again once the config names a level
  auto logger = spdlog::stderr_logger_st("batond");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace baton
