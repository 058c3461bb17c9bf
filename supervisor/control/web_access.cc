#include "supervisor/control/web_access.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>

#include "supervisor/base/unique_fd.h"
#include "supervisor/control/protocol.h"

namespace baton {

namespace {

constexpr size_t kTokenBytes = 32;

bool IsToken(std::string_view text) {
  if (text.size() < 32 || text.size() > 256) return false;
  for (char c : text)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

Result<std::string> CreateToken(const std::string& path) {
  unsigned char raw[kTokenBytes];
  for (size_t got = 0; got < sizeof raw;) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("getrandom", errno);
    got += static_cast<size_t>(n);
  }
  static const char* kHex = "0123456789abcdef";
  std::string token;
  for (unsigned char b : raw) {
    token += kHex[b >> 4];
    token += kHex[b & 15];
  }
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return Status::FromErrno("create " + path, errno);
  std::string line = token + "\n";
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(fd.get()) != 0) {
    int err = errno;
    ::unlink(path.c_str());
    return Status::FromErrno("write " + path, err);
  }
  return token;
}

}  // namespace

Result<std::string> LoadOrCreateWebToken(const std::string& state_dir) {
  const std::string path = state_dir + "/web.token";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd && errno == ENOENT) return CreateToken(path);
  if (!fd) return Status::FromErrno("open " + path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno("stat " + path, errno);
  if (!S_ISREG(st.st_mode)) return Status::FailedPrecondition(path + " is not a regular file");
  if (st.st_uid != ::geteuid()) return Status::FailedPrecondition(path + " belongs to another user");
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return Status::FailedPrecondition(path + " may be read by others (mode " + mode +
                                      "): make it 0600, or remove it for a new token");
  }
  char buf[512];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n < 0) return Status::FromErrno("read " + path, errno);
  std::string token(buf, static_cast<size_t>(n));
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (!IsToken(token))
    return Status::InvalidArgument(path + " holds no token (32 to 256 hexadecimal digits); remove it for a new one");
  return token;
}

bool BearerMatches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "Bearer ";
  if (token.empty() || authorization.size() != kScheme.size() + token.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i])))
      return false;
  unsigned char differ = 0;
  for (size_t i = 0; i < token.size(); ++i)
    differ |= static_cast<unsigned char>(authorization[kScheme.size() + i] ^ token[i]);
  return differ == 0;
}

WebDecision DecideWebRequest(const ApiRequest& request, std::string_view token, bool read_only) {
  const protocol::Target target = protocol::ParseTarget(request.target);
  const std::string& path = target.path;
  const bool reading = request.method == "GET" || request.method == "HEAD";
  if (path == "/" || path == "/index.html") return {WebRoute::kAsset, "/index.html", ""};
  if (path == "/app.js" || path == "/app.css") return {WebRoute::kAsset, path, ""};
  const bool api = path.rfind("/v1/", 0) == 0 || path == protocol::kMetricsPath;
  if (!api) return {WebRoute::kNotFound, "", ""};
  if (!BearerMatches(request.authorization, token)) return {WebRoute::kUnauthorized, "", ""};
  if (reading && path == protocol::kDashboardPath) return {WebRoute::kInfo, "", ""};
  // What the dashboard shows (status, services with their history and logs, events,
  // metrics), and the actions it offers on a service.
  auto route = protocol::ParseServicePath(path);
  if (reading) {
    if (path == protocol::kStatusPath || path == protocol::kServicesPath || path == protocol::kEventsPath ||
        path == protocol::kMetricsPath || route)
      return {WebRoute::kApi, "", ""};
    return {WebRoute::kForbidden, "", path + " is not offered on the dashboard; use batonctl"};
  }
  if (read_only) return {WebRoute::kForbidden, "", "the dashboard is read-only (daemon.web.read_only)"};
  using protocol::ServiceAction;
  static const ServiceAction kOffered[] = {ServiceAction::kUpgrade, ServiceAction::kRollback, ServiceAction::kRestart,
                                           ServiceAction::kPromote, ServiceAction::kPause,    ServiceAction::kResume,
                                           ServiceAction::kScale};
  if (request.method == "POST" && route && route->action)
    for (ServiceAction offered : kOffered)
      if (*route->action == offered) return {WebRoute::kApi, "", ""};
  return {WebRoute::kForbidden, "", request.method + " " + path + " is not offered on the dashboard; use batonctl"};
}

}  // namespace baton
