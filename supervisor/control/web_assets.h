// The dashboard's files, built into batond from control/web/ (cmake/embed.cmake): no
// network, no files to install, the same page as the program that serves it.
#pragma once

#include <string_view>

namespace baton {

struct WebAsset {
  std::string_view path;  // "/index.html", "/app.js", "/app.css"
  std::string_view content_type;
  std::string_view body;
};

// The asset at `path`, or null.
const WebAsset* FindWebAsset(std::string_view path);

}  // namespace baton
