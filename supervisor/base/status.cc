#include "supervisor/base/status.h"

#include <cstring>

namespace baton {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kFailedPrecondition: return "failed_precondition";
    case ErrorCode::kIoError: return "io_error";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kFailed: return "failed";
  }
  return "unknown";
}

Status Status::FromErrno(const std::string& context, int err) {
  return Status(ErrorCode::kIoError, "unable to " + context + ": " + std::strerror(err));
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(ErrorCodeName(code_)) + ": " + message_;
}

}  // namespace baton
