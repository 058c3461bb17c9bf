// What a self-upgrade carries from one batond program to the next, typed, and its one
// codec. The daemon's own fields, the shape of each service, and what there are thousands
// of (workers, children, log lines) are typed; the rest of what a module alone reads (a
// service's generations and counters, a proxy's connections, a steering group's sockets
// and maps) stays a sub-document its owner writes and reads (Snapshot/Restore,
// Export/Adopt). The text is JSON, read with Boost.JSON: with 1,000 workers (half a
// megabyte) nlohmann::json took 14 ms to parse it into a tree, and the new program waits
// on that before it takes anything over.
//
// The format number (kCarriedStateFormat) changes, like Envoy's HOT_RESTART_VERSION, when
// a program could misread the state another one wrote: a field removed, renamed, or given
// another type or meaning, or a new field the reader must act on to carry on safely. A new
// field that an older reader may ignore keeps the number, and the reader ignores fields it
// does not know. `batond --resume-formats` lists every format a binary reads; a binary
// keeps reading the previous format for at least one release, so that both the upgrade
// and the way back work. `binary`, `program_fd` and `fds` are the way back to the previous
// program: they keep their names and types in every format, and are read first.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "supervisor/base/status.h"
#include "supervisor/handover/service_snapshot.h"
#include "supervisor/logs/log_buffer.h"
#include "supervisor/process/carried_child.h"

namespace baton {

inline constexpr int kCarriedStateFormat = 1;

struct CarriedListener {
  std::string name;
  std::string address;  // as SocketAddress::ToString wrote it
  int fd = -1;
  bool from_systemd = false;
};

struct CarriedService {
  std::string name;
  std::vector<CarriedListener> listeners;
  ServiceSnapshot service;                        // Service::Snapshot
  std::map<std::string, nlohmann::json> proxies;  // ProxyListener::Export, by listener name
  nlohmann::json steering;                        // ServiceSteering::Export
  std::vector<LogLine> logs;                      // oldest first

  const CarriedListener* FindListener(std::string_view name) const;
};

// The attempt that replaced the program.
struct CarriedExec {
  std::string binary;
  int attempt = 0;
  std::string from_version, to_version;
  double at = 0;  // Unix seconds, when the previous program called exec
};

struct CarriedState {
  int format = kCarriedStateFormat;
  std::string version;  // batond's, in the program that wrote the state
  std::string binary;   // that program's file: a failed attempt returns to it
  std::string config_path, config_text;
  double started_wall = 0;
  uint64_t orphans_reaped = 0;
  uint64_t notify_ignored = 0;
  bool announced_ready = false;
  nlohmann::json self_upgrade;  // the attempts so far and the last outcome, as /v1/status shows them
  int control_fd = -1, notify_fd = -1;
  int health_fd = -1;   // with [daemon] health
  int web_fd = -1;      // with [daemon] web
  int program_fd = -1;  // the previous program's file, to return to
  std::vector<CarriedService> services;
  std::vector<CarriedChild> children;  // PosixLauncher::Export
  // The epoll set watching the children's descriptors (PosixLauncher::watch_set_fd), each
  // registered level-triggered for EPOLLIN with its own number as data; -1 if none, as
  // from a program that registered them with its loop instead.
  int children_watch_fd = -1;
  std::optional<std::pair<uint64_t, uint64_t>> child_fd_limit;  // RLIMIT_NOFILE before batond raised it
  std::vector<int> fds;                                         // every descriptor kept open across exec
  CarriedExec exec;
  std::string resume_failed;  // why the new program could not take over; empty when it did

  const CarriedService* FindService(std::string_view name) const;
};

std::string EncodeCarriedState(const CarriedState& state);
// Refuses text that is not JSON, another format, or a field of the wrong type, naming it.
// What was read before the error stays in `state`: the way back is read first.
Status DecodeCarriedState(std::string_view text, CarriedState& state);

}  // namespace baton
