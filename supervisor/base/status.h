// Errors as values. A Status is either OK or an error code with a message that reads
// "unable to X: reason". Result<T> carries a value or a non-OK Status. Module boundaries
// return these; third-party exceptions are caught at the edge and turned into them.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace baton {

enum class ErrorCode {
  kOk,
  kInvalidArgument,  // bad input from a user: config, API request
  kNotFound,
  kConflict,  // e.g. a handover already in progress
  kFailedPrecondition,
  kIoError,  // a system call failed
  kTimeout,
  kFailed,  // an operation ran and failed (e.g. a generation never became ready)
};

const char* ErrorCodeName(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {ErrorCode::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {ErrorCode::kNotFound, std::move(msg)}; }
  static Status Conflict(std::string msg) { return {ErrorCode::kConflict, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) { return {ErrorCode::kFailedPrecondition, std::move(msg)}; }
  static Status Timeout(std::string msg) { return {ErrorCode::kTimeout, std::move(msg)}; }
  static Status Failed(std::string msg) { return {ErrorCode::kFailed, std::move(msg)}; }
  // "unable to <context>: <strerror(err)>"
  static Status FromErrno(const std::string& context, int err);

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Status(ErrorCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be OK

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace baton
