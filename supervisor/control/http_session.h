// One HTTP/1.1 connection of the control socket or the web dashboard (Boost.Beast): one
// request is read (bounded header and body, within a deadline, so slow or idle clients
// are dropped), handed on as an ApiRequest with a Responder for the answer, and the
// connection closes after it. Streams keep a read pending to notice the client leaving.
// Loop thread only. Instantiated for Unix (control) and TCP (dashboard) sockets.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "supervisor/control/api.h"

namespace baton {

// What a session does with a request it has read in full.
using RequestHandler = std::function<void(ApiRequest request, std::shared_ptr<Responder> responder)>;

// Starts serving `socket` (a Protocol::socket): the request goes to `handler`.
template <class Socket>
void ServeHttp(Socket socket, std::chrono::milliseconds read_timeout, RequestHandler handler);

}  // namespace baton
