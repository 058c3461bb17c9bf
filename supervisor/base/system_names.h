// What batond reads from the system it runs on by name: its own environment, and groups
// given by name or number. One reader each, for the daemon and the launcher alike.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "supervisor/base/status.h"

namespace baton {

// batond's environment, KEY=VALUE pairs in order (entries without '=' are skipped).
std::vector<std::pair<std::string, std::string>> ProcessEnvironment();

// Whether `text` is a number of decimal digits only (a uid or gid rather than a name).
bool IsNumericId(const std::string& text);

// A group by name, or by number (in range, below the invalid id); `key` names the setting
// in errors, e.g. "daemon.socket_group: no group named 'web'".
Result<gid_t> LookupGroup(const std::string& name, const std::string& key);

}  // namespace baton
