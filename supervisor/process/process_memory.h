// How much memory a worker holds: the resident set of every process in its process group
// (a worker and whatever it forked), read from /proc.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <string>

#include "supervisor/base/status.h"

namespace baton {

// The sum of VmRSS over the processes whose process group is `pgid`, in bytes. NotFound
// when none is left.
Result<uint64_t> ProcessGroupRss(int pgid, const std::string& proc = "/proc");

// What one process has used: CPU time (user and system) since it started, and its
// resident memory now.
struct ProcessUsage {
  double cpu_s = 0;
  uint64_t rss_bytes = 0;
};

// From the text of /proc/PID/stat (fields 14, 15 and 24), or nothing when it does not parse.
std::optional<ProcessUsage> ParseProcessUsage(std::string_view stat);
// Reads /proc/PID/stat; nothing when the process is gone.
std::optional<ProcessUsage> ReadProcessUsage(int pid, const std::string& proc = "/proc");

// From the text of /proc/PID/stat: the process group (field 5), or nothing when the text
// does not parse. The command name (field 2) may hold spaces and parentheses.
std::optional<int> ProcessGroupOf(std::string_view stat);

}  // namespace baton
