#!/usr/bin/python3
"""`batonctl top` in a real terminal (tmux): it shows the services and workers, redraws
when an upgrade happens (the new version live, the promotion among the events) and quits
on `q`, restoring the terminal.

    /usr/bin/python3 tests/terminal/top_test.py BUILD_DIR

Exit status 77 (skipped, said why) when tmux is missing; ./run test installs it.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from batond_process import Batond, api, wait_for  # noqa: E402

SKIP = 77


def main():
    build = os.path.abspath(sys.argv[1])
    if not shutil.which("tmux"):
        print("SKIPPED: tmux is missing; apt-get install tmux")
        return SKIP
    worker = os.path.join(build, "tests/test_worker")
    config = lambda tmp: f"""[daemon]
control_socket = "{tmp}/ctl.sock"
state_dir = "{tmp}/state"
[service.web]
command = ["{worker}", "--version", "{{version}}", "--notify"]
version = "v1"
replicas = 2
bake_time = "0s"
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.ready]
notify = true
timeout = "5s"
"""
    server = f"baton-top-{os.getpid()}"  # a tmux server of this test's own
    tmux = ["tmux", "-L", server, "-f", "/dev/null"]
    pane = lambda: subprocess.run(tmux + ["capture-pane", "-p", "-t", "top"], capture_output=True, text=True).stdout

    def showing(*words):
        text = pane()
        return text if all(w in text for w in words) else None

    with Batond(build, config, "baton-top-") as d:
        try:
            wait_for("batond", lambda: os.path.exists(d.sock)
                     and api(d.sock, "GET", "/v1/status")[1]["services"][0]["state"] == "running")
            subprocess.run(tmux + ["new-session", "-d", "-s", "top", "-x", "150", "-y", "45",
                                   f"{build}/ctl/batonctl -s {d.sock} top; echo top exited $?; sleep 30"], check=True)
            print(wait_for("the service and its workers", lambda: showing("web", "version v1", "ready", "MiB")))
            status, body = api(d.sock, "POST", "/v1/services/web/upgrade", {"version": "v2"})
            assert status == 200 and body["result"]["promoted"], body
            print(wait_for("v2 live and the promotion among the events", lambda: showing("version v2", "promoted")))
            subprocess.run(tmux + ["send-keys", "-t", "top", "q"], check=True)
            wait_for("top to quit", lambda: "top exited 0" in pane())
            print("top: every check passed")
            return 0
        finally:
            subprocess.run(tmux + ["kill-server"], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
