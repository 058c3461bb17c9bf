#include "supervisor/control/web_assets.h"

#include <cstddef>

namespace baton {

// Generated from control/web/ by cmake/embed.cmake.
extern const unsigned char kWebIndexHtml[], kWebAppJs[], kWebAppCss[];
extern const std::size_t kWebIndexHtml_size, kWebAppJs_size, kWebAppCss_size;

namespace {
std::string_view Bytes(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}
}  // namespace

const WebAsset* FindWebAsset(std::string_view path) {
  static const WebAsset kAssets[] = {
      {"/index.html", "text/html; charset=utf-8", Bytes(kWebIndexHtml, kWebIndexHtml_size)},
      {"/app.js", "text/javascript; charset=utf-8", Bytes(kWebAppJs, kWebAppJs_size)},
      {"/app.css", "text/css; charset=utf-8", Bytes(kWebAppCss, kWebAppCss_size)},
  };
  for (const auto& a : kAssets)
    if (a.path == path) return &a;
  return nullptr;
}

}  // namespace baton
