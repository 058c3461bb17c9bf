// libssh, loaded with dlopen when the first tunnel is made, not linked: libssh and what it
// pulls in (libcrypto, Kerberos: two thirds of batond's 7,700 symbol bindings) cost about
// 4 ms of CPU at every start of the program, and a self-upgrade starts it twice (the
// format check and the exec), whether or not a tunnel is configured.
#pragma once

#include <libssh/libssh.h>
#include <libssh/server.h>  // ssh_send_keepalive, which clients use too

#include "supervisor/base/status.h"

namespace baton {

// Every libssh function the tunnels call, each named once.
// clang-format off
#define BATON_LIBSSH_FUNCTIONS(X) \
  X(ssh_init) \
  X(ssh_new) \
  X(ssh_free) \
  X(ssh_options_set) \
  X(ssh_set_blocking) \
  X(ssh_connect) \
  X(ssh_disconnect) \
  X(ssh_is_connected) \
  X(ssh_get_error) \
  X(ssh_get_poll_flags) \
  X(ssh_blocking_flush) \
  X(ssh_send_keepalive) \
  X(ssh_session_is_known_server) \
  X(ssh_pki_import_privkey_file) \
  X(ssh_key_free) \
  X(ssh_userauth_publickey) \
  X(ssh_string_free_char) \
  X(ssh_channel_listen_forward) \
  X(ssh_channel_cancel_forward) \
  X(ssh_channel_open_forward_port) \
  X(ssh_channel_read_nonblocking) \
  X(ssh_channel_write) \
  X(ssh_channel_window_size) \
  X(ssh_channel_send_eof) \
  X(ssh_channel_is_eof) \
  X(ssh_channel_is_closed) \
  X(ssh_channel_close) \
  X(ssh_channel_free)
// clang-format on

struct LibSsh {
#define BATON_LIBSSH_MEMBER(name) decltype(&::name) name = nullptr;
  BATON_LIBSSH_FUNCTIONS(BATON_LIBSSH_MEMBER)
#undef BATON_LIBSSH_MEMBER
};

// Loads libssh and initialises it, once; later calls return the first outcome.
Status LoadLibSsh();
// The loaded functions: only after LoadLibSsh succeeded.
const LibSsh& Ssh();

}  // namespace baton
