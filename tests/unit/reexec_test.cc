// reexec: what the new program does with the descriptors the previous one kept for it.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "supervisor/base/unique_fd.h"
#include "supervisor/upgrade/reexec.h"

namespace {

bool ClosesAtExec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

}  // namespace

TEST_CASE("reexec: the descriptors the new program was handed close at its own exec again") {
  int p[2];
  REQUIRE(::pipe2(p, 0) == 0);  // kept across exec, as the previous program left them
  baton::UniqueFd read_end(p[0]), write_end(p[1]);
  REQUIRE_FALSE(ClosesAtExec(p[0]));
  REQUIRE_FALSE(ClosesAtExec(p[1]));

  baton::Status s = baton::CloseCarriedAtExec({p[0], p[1]});

  REQUIRE(s.ok());
  CHECK(ClosesAtExec(p[0]));
  CHECK(ClosesAtExec(p[1]));
}

TEST_CASE("reexec: a descriptor between carried ones that was not carried keeps its flag") {
  int p[2];
  REQUIRE(::pipe2(p, 0) == 0);
  baton::UniqueFd read_end(p[0]), write_end(p[1]);
  baton::UniqueFd inherited(::dup(p[1]));  // one batond was started with, say
  baton::UniqueFd after(::dup(p[1]));
  REQUIRE(inherited.get() > p[1]);
  REQUIRE(after.get() > inherited.get());

  REQUIRE(baton::CloseCarriedAtExec({p[0], p[1], after.get()}).ok());

  CHECK(ClosesAtExec(p[0]));
  CHECK(ClosesAtExec(p[1]));
  CHECK(ClosesAtExec(after.get()));
  CHECK_FALSE(ClosesAtExec(inherited.get()));
}

TEST_CASE("reexec: a carried descriptor that is not open is named, and none is changed") {
  int p[2];
  REQUIRE(::pipe2(p, 0) == 0);
  baton::UniqueFd read_end(p[0]), write_end(p[1]);
  int gone = ::dup(p[0]);
  REQUIRE(gone >= 0);
  ::close(gone);

  baton::Status s = baton::CloseCarriedAtExec({p[0], gone});

  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("descriptor " + std::to_string(gone)) != std::string::npos);
  CHECK_FALSE(ClosesAtExec(p[0]));
  CHECK_FALSE(baton::CloseCarriedAtExec({-1}).ok());
}
