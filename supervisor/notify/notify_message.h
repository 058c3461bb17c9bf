// The sd_notify datagram format: newline-separated KEY=VALUE assignments, e.g.
// "READY=1\nSTATUS=serving\n". Parsing is pure; invalid lines are skipped, as systemd does.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/base/unique_fd.h"

namespace baton {

struct NotifyMessage {
  std::map<std::string, std::string> fields;
  std::vector<std::shared_ptr<UniqueFd>> fds;  // with FDSTORE=1: descriptors to keep
  bool ready() const { return Is("READY", "1"); }
  bool stopping() const { return Is("STOPPING", "1"); }
  const std::string* status() const {
    auto it = fields.find("STATUS");
    return it == fields.end() ? nullptr : &it->second;
  }
  bool Is(const std::string& key, const std::string& value) const {
    auto it = fields.find(key);
    return it != fields.end() && it->second == value;
  }
};

NotifyMessage ParseNotifyMessage(std::string_view datagram);

}  // namespace baton
