#include "supervisor/process/process_memory.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "supervisor/base/number.h"

namespace baton {

std::optional<int> ProcessGroupOf(std::string_view stat) {
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::istringstream rest{std::string(stat.substr(close + 1))};
  std::string state, ppid, pgrp;
  if (!(rest >> state >> ppid >> pgrp)) return std::nullopt;
  auto group = ParseInteger<int>(pgrp, "/proc/PID/stat pgrp", 0);
  if (!group.ok()) return std::nullopt;
  return *group;
}

std::optional<ProcessUsage> ParseProcessUsage(std::string_view stat) {
  static const double kTicks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  static const uint64_t kPage = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  // After the command: field 3 (state) onwards.
  std::istringstream rest{std::string(stat.substr(close + 1))};
  std::string field;
  uint64_t utime = 0, stime = 0, rss = 0;
  for (int n = 3; n <= 24 && rest >> field; ++n) {
    uint64_t* into = n == 14 ? &utime : n == 15 ? &stime : n == 24 ? &rss : nullptr;
    if (!into) continue;
    auto v = ParseInteger<uint64_t>(field, "/proc/PID/stat");
    if (!v.ok()) return std::nullopt;
    *into = *v;
    if (n == 24) return ProcessUsage{static_cast<double>(utime + stime) / kTicks, rss * kPage};
  }
  return std::nullopt;
}

std::optional<ProcessUsage> ReadProcessUsage(int pid, const std::string& proc) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in(proc + "/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ParseProcessUsage(stat);
}

Result<uint64_t> ProcessGroupRss(int pgid, const std::string& proc) {
  static const uint64_t kPage = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t pages = 0;
  bool found = false;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(proc, ec)) {
    std::string pid = entry.path().filename();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat_file(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    if (ProcessGroupOf(stat) != pgid) continue;
    // statm: size resident shared ...; in pages.
    std::ifstream statm(entry.path() / "statm");
    std::string size, resident;
    if (!(statm >> size >> resident)) continue;  // gone meanwhile
    auto n = ParseInteger<uint64_t>(resident, "/proc/PID/statm resident");
    if (!n.ok()) continue;
    pages += *n;
    found = true;
  }
  if (ec) return Status::FromErrno("read " + proc, ec.value());
  if (!found) return Status::NotFound("no process in group " + std::to_string(pgid));
  return pages * kPage;
}

}  // namespace baton
