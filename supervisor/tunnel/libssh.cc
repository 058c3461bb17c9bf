#include "supervisor/tunnel/libssh.h"

#include <dlfcn.h>

#include <string>

namespace baton {

namespace {

LibSsh loaded;

Status Load() {
  // The soname the build was made against: the same ABI.
  void* lib = ::dlopen(BATON_LIBSSH_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!lib) return Status::FailedPrecondition(std::string("tunnels need libssh: ") + ::dlerror());
#define BATON_LIBSSH_RESOLVE(name)                                            \
  loaded.name = reinterpret_cast<decltype(loaded.name)>(::dlsym(lib, #name)); \
  if (!loaded.name) return Status::FailedPrecondition(BATON_LIBSSH_SONAME " has no " #name);
  BATON_LIBSSH_FUNCTIONS(BATON_LIBSSH_RESOLVE)
#undef BATON_LIBSSH_RESOLVE
  if (loaded.ssh_init() != 0) return Status::FailedPrecondition("libssh did not initialise");
  return Status::Ok();
}

}  // namespace

Status LoadLibSsh() {
  static const Status outcome = Load();  // the library stays loaded for the program's life
  return outcome;
}

const LibSsh& Ssh() { return loaded; }

}  // namespace baton
