// A blocking HTTP+JSON client for batond's control socket, used by batonctl and by the
// integration tests. One request per connection. With a line handler, an NDJSON response
// is delivered line by line as it arrives.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace baton {

struct ClientResponse {
  int status = 0;       // HTTP status; 0 when no response came (see error)
  nlohmann::json body;  // parsed JSON body (null for a stream or unparsable body)
  std::string raw;      // the raw body
  std::string error;    // transport error, e.g. "cannot connect to /run/baton/control.sock: ..."
};

ClientResponse CallControl(const std::string& socket_path, const std::string& method, const std::string& target,
                           const std::string& body = "",
                           const std::function<void(const nlohmann::json&)>& on_line = nullptr);

}  // namespace baton
