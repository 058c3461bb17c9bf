// One HTTP request over a fresh loopback connection, for the tests (harness.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tests/integration/harness.h"

namespace baton::it {

HttpResponse HttpRequest(int port, const std::string& method, const std::string& path, std::string* error,
                         const std::string& headers) {
  auto fail = [&](const std::string& why) {
    if (error) *error = why;
    return HttpResponse{};
  };
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string why = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return fail(why);
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" + headers + "\r\n";
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return fail("write failed");
  }
  std::string res;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) res.append(buf, n);
  int read_errno = errno;
  ::close(fd);
  if (n < 0) return fail(std::string("read: ") + std::strerror(read_errno));
  auto header_end = res.find("\r\n\r\n");
  if (res.rfind("HTTP/1.1 ", 0) != 0 || res.size() < 12 || header_end == std::string::npos)
    return fail(res.empty() ? "empty response (connection closed)" : "bad response: " + res.substr(0, 40));
  std::string body = res.substr(header_end + 4);
  auto cl = res.find("Content-Length: ");
  if (method != "HEAD" && cl != std::string::npos && std::stoul(res.substr(cl + 16)) != body.size())
    return fail("truncated body");
  return HttpResponse{std::stoi(res.substr(9, 3)), body, res.substr(0, header_end)};
}

std::string HttpGet(int port, const std::string& path, std::string* error) {
  std::string why;
  HttpResponse r = HttpRequest(port, "GET", path, &why);
  if (r.status == 200) return r.body;
  if (error) *error = r.status == 0 ? why : "bad response: HTTP " + std::to_string(r.status);
  return "";
}

}  // namespace baton::it
