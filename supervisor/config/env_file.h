// Environment files (a service's env_file), in systemd's EnvironmentFile= syntax:
// KEY=VALUE lines; '#' or ';' first on a line makes it a comment; whitespace around the
// key and before the value is dropped, and after an unquoted value too; 'single quotes'
// keep everything literally, "double quotes" take \" \\ \` \$ as escapes; a backslash
// at the end of a line joins the next; an unquoted backslash takes the next character as
// it is. A file named with a leading '-' may be missing.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "supervisor/base/status.h"

namespace baton {

using EnvList = std::vector<std::pair<std::string, std::string>>;

// The assignments in `text`, in order; an error names `path` and the line.
Result<EnvList> ParseEnvironmentFile(std::string_view text, const std::string& path);

// Every file in turn (a later one overrides an earlier one where keys repeat).
Result<EnvList> ReadEnvironmentFiles(const std::vector<std::string>& files);

}  // namespace baton
