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

// From the text of /proc/PID/stat: the process group (field 5), or nothing when the text
// does not parse. The command name (field 2) may hold spaces and parentheses.
std::optional<int> ProcessGroupOf(std::string_view stat);

}  // namespace baton
