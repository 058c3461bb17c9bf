// The control protocol: HTTP/1.1 with JSON bodies on a Unix socket, versioned under /v1.
//
//   GET  /v1/status                       daemon and every service
//   GET  /v1/services/NAME                one service
//   GET  /v1/services/NAME/history        its releases and their outcomes
//   POST /v1/services/NAME/upgrade        {"version": "v2", "command": [..]?, "env": {..}?}
//   POST /v1/services/NAME/rollback       {"to": "v1"?}
//
// Upgrade and rollback wait for the outcome. With "Accept: application/x-ndjson" the
// response streams one JSON object per line: {"event": {...}} for each progress event,
// then {"result": {...}} last. Otherwise the response is the result alone: 200 when
// promoted, 422 with the error and the result when the new generation failed.
//
// Errors: {"error": {"code": "...", "message": "..."}} with a fitting status.
//
// Versioning rule: fields may be added within v1; removing or changing the meaning of a
// field or route needs /v2, served beside /v1 for at least one release.
#pragma once

namespace baton::protocol {

inline constexpr const char* kApiVersion = "v1";
inline constexpr const char* kNdjson = "application/x-ndjson";
inline constexpr size_t kMaxBodyBytes = 1 << 20;

}  // namespace baton::protocol
