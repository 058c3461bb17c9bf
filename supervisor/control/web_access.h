// Who may do what on the web dashboard, without sockets. The dashboard's pages hold no
// data and are served to anyone; its API answers only requests that carry the token in
// an `Authorization: Bearer` header. A header, never a cookie: a browser sends cookies
// with requests that other sites make, never this header (no CSRF), and batond answers
// no CORS preflight. Of the control API, the dashboard reaches only what it shows and the
// actions it offers; `read_only` leaves it the reading.
#pragma once

#include <string>
#include <string_view>

#include "supervisor/base/status.h"
#include "supervisor/control/api.h"

namespace baton {

// The token in `state_dir`/web.token: created (32 random bytes, hex, mode 0600) when the
// file does not exist. A file that others may read, or that holds no token, is an error.
Result<std::string> LoadOrCreateWebToken(const std::string& state_dir);

// Whether `authorization` is "Bearer TOKEN" for `token`, in time independent of where
// they differ.
bool BearerMatches(std::string_view authorization, std::string_view token);

enum class WebRoute {
  kAsset,         // a page, script or style: `asset` names it
  kApi,           // to the control API as it is
  kInfo,          // GET /v1/dashboard: what the page needs to know of itself (read-only or not)
  kUnauthorized,  // 401: no token, or the wrong one
  kForbidden,     // 403: read_only, or not offered on the dashboard (`reason` says which)
  kNotFound,      // 404
};

struct WebDecision {
  WebRoute route = WebRoute::kNotFound;
  std::string asset;   // with kAsset: the asset's path
  std::string reason;  // with kForbidden
};

WebDecision DecideWebRequest(const ApiRequest& request, std::string_view token, bool read_only);

}  // namespace baton
