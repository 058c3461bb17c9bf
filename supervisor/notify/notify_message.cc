#include "supervisor/notify/notify_message.h"

namespace baton {

NotifyMessage ParseNotifyMessage(std::string_view datagram) {
  NotifyMessage msg;
  while (!datagram.empty()) {
    size_t nl = datagram.find('\n');
    std::string_view line = datagram.substr(0, nl);
    datagram = nl == std::string_view::npos ? std::string_view() : datagram.substr(nl + 1);
    size_t eq = line.find('=');
    if (eq == 0 || eq == std::string_view::npos || line.find('\0') != std::string_view::npos) continue;
    msg.fields[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return msg;
}

}  // namespace baton
