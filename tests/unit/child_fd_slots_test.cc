// ChildFdSlots: what a child needs sits at reserved low numbers while it starts, and batond
// keeps no reference to it afterwards.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>

#include "supervisor/process/child_setup.h"

using namespace baton;

namespace {

bool SameFile(int a, int b) {
  struct stat x {
  }, y{};
  return ::fstat(a, &x) == 0 && ::fstat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

}  // namespace

TEST_CASE("child fd slots: copies below end(), close-on-exec, dropped by Clear") {
  ChildFdSlots slots;
  REQUIRE(slots.Reserve(2).ok());
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
  // Three descriptors for two reserved slots: one more is reserved.
  auto placed = slots.Fill({p[1], p[1], p[0]});
  REQUIRE(placed.ok());
  REQUIRE(placed->size() == 3);
  for (int fd : *placed) {
    CHECK(fd >= 3);
    CHECK(fd < slots.end());
    CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  }
  CHECK(slots.devnull() < slots.end());
  CHECK(SameFile((*placed)[0], p[1]));
  CHECK(SameFile((*placed)[2], p[0]));

  // The slots keep the write end open after the original is closed ...
  ::close(p[1]);
  char c;
  CHECK(::read(p[0], &c, 1) == -1);
  CHECK(errno == EAGAIN);
  // ... until Clear: then the reader sees end-of-file, and each slot is /dev/null again.
  slots.Clear();
  CHECK(::read(p[0], &c, 1) == 0);
  for (int fd : *placed) CHECK(SameFile(fd, slots.devnull()));
  ::close(p[0]);
}

TEST_CASE("child fd slots: a descriptor that is not open is refused and nothing stays filled") {
  ChildFdSlots slots;
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
  const int not_open = 65000;
  REQUIRE(::fcntl(not_open, F_GETFD) == -1);
  auto placed = slots.Fill({p[1], not_open});
  CHECK_FALSE(placed.ok());
  CHECK(slots.end() == slots.devnull() + 1);  // no slot in use: the first copy was dropped
  ::close(p[0]);
  ::close(p[1]);
}
