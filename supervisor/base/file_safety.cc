#include "supervisor/base/file_safety.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace baton {

namespace {

std::string Mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

std::string Parent(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Status CheckPrivateDirectory(const std::string& dir, const std::string& what) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return Status::FromErrno(what + ": " + dir, errno);
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return Status::FailedPrecondition(what + ": directory " + dir + " belongs to uid " + std::to_string(st.st_uid) +
                                      ", not to batond's user; use a directory only batond's user can write to, "
                                      "such as /run/baton");
  if (st.st_mode & S_IWOTH)
    return Status::FailedPrecondition(what + ": directory " + dir + " is writable by others (mode " + Mode(st.st_mode) +
                                      "); use a directory only batond's user can write to, such as /run/baton");
  return Status::Ok();
}

Status CheckRootConfig(const std::string& path) {
  if (::geteuid() != 0) return Status::Ok();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(path, errno);
  std::string fix = "; batond runs as root, so whoever can change it can run anything as root (chown root " + path +
                    "; chmod go-w " + path + ")";
  if (st.st_uid != 0) return Status::FailedPrecondition(path + ": owned by uid " + std::to_string(st.st_uid) + fix);
  if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0))
    return Status::FailedPrecondition(path + ": writable by others (mode " + Mode(st.st_mode) + ")" + fix);
  std::string dir = Parent(path);
  struct stat ds;
  if (::stat(dir.c_str(), &ds) == 0 && (ds.st_mode & S_IWOTH) && !(ds.st_mode & S_ISVTX))
    return Status::FailedPrecondition(path + ": its directory " + dir + " lets others replace it (mode " +
                                      Mode(ds.st_mode) + ")" + fix);
  return Status::Ok();
}

}  // namespace baton
