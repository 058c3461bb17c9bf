// Refusing files and directories another local user could tamper with: a control socket
// in a directory others can write to (they could put their own socket in its place), a
// configuration others can change while batond runs as root (they could run anything).
#pragma once

#include <string>

#include "supervisor/base/status.h"

namespace baton {

// `dir` must be owned by root or by batond's user, and not writable by others.
Status CheckPrivateDirectory(const std::string& dir, const std::string& what);
// When batond runs as root: `path` must be owned by root and writable by nobody but
// root, and its directory must not let others replace it.
Status CheckRootConfig(const std::string& path);

}  // namespace baton
