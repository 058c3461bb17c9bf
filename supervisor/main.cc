// batond: args -> config -> Supervisor::Create -> Run -> exit code.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "supervisor/base/file_safety.h"
#include "supervisor/base/log.h"
#include "supervisor/logs/log_files.h"
#include "supervisor/supervisor.h"

namespace {

// Workers get /dev/null on stdin; batond itself must own fds 0-2 so that no socket or
// pipe it creates lands there (and then on a worker's stdio).
void EnsureStdio() {
  for (int fd = 0; fd < 3; ++fd)
    if (::fcntl(fd, F_GETFD) < 0) {
      int n = ::open("/dev/null", O_RDWR);
      if (n >= 0 && n != fd) {
        ::dup2(n, fd);
        ::close(n);
      }
    }
}

}  // namespace

int main(int argc, char** argv) {
  EnsureStdio();
  CLI::App app{"batond: owns listening sockets and hands them from one generation of a server to the next"};
  std::string config_path;
  bool check_only = false, print_formats = false;
  int resume_fd = -1;
  std::string resume_failed;
  app.add_option("-c,--config", config_path, "configuration file (baton.toml(5))");
  app.add_flag("--check", check_only, "validate the configuration and exit");
  app.set_version_flag("--version", BATON_VERSION);
  // Self-upgrade, between one batond program and the next (batond(8), SELF-UPGRADE).
  app.add_flag("--resume-formats", print_formats, "print the self-upgrade state formats this program reads")->group("");
  app.add_option("--resume-state", resume_fd, "take over from the state in this descriptor")->group("");
  app.add_option("--resume-failed", resume_failed, "why the next program handed back")->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : baton::kExitUsage;
  }
  if (print_formats) {
    std::cout << "batond " << BATON_VERSION << " state-formats " << baton::kCarriedStateFormat << "\n";
    return baton::kExitOk;
  }
  if (resume_fd >= 0) {
    baton::InitLogging("info");
    return baton::ResumeFromState(resume_fd, resume_failed);
  }
  if (config_path.empty()) {
    std::cerr << "batond: --config is required\n";
    return baton::kExitUsage;
  }

  auto config = baton::LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << "batond: " << config.status().message() << "\n";
    return baton::kExitUsage;
  }
  if (baton::Status safe = baton::CheckRootConfig(config_path); !safe.ok()) {
    std::cerr << "batond: " << safe.message() << "\n";
    return baton::kExitUsage;
  }
  (void)baton::SetUpDaemonLog(config->daemon);  // a file that cannot be opened is logged; stderr goes on
  for (const auto& w : config->warnings) spdlog::warn("{}", w);
  if (check_only) {
    std::cout << config_path << ": ok (" << config->services.size() << " service(s))\n";
    return baton::kExitOk;
  }
  baton::Supervisor::CreateError error;
  auto supervisor = baton::Supervisor::Create(std::move(*config), &error);
  if (!supervisor) {
    spdlog::critical("{}", error.status.message());
    return error.exit_code;
  }
  return supervisor->Run();
}
