#!/usr/bin/python3
"""`batonctl top` in a real terminal (tmux): it shows the services and workers, redraws
when an upgrade happens (the new version live, the promotion among the events) and quits
on `q`, restoring the terminal.

    /usr/bin/python3 tests/terminal/top_test.py BUILD_DIR

Exit status 77 (skipped, said why) when tmux is missing; ./run test installs it.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77


def api(sock, method, path, body=None):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sock)
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"null")


def wait_for(what, condition, limit=20):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last:\n{last}")


def main():
    build = os.path.abspath(sys.argv[1])
    if not shutil.which("tmux"):
        print("SKIPPED: tmux is missing; apt-get install tmux")
        return SKIP
    worker = os.path.join(build, "tests/test_worker")
    tmp = tempfile.mkdtemp(prefix="baton-top-")
    sock = os.path.join(tmp, "ctl.sock")
    with open(os.path.join(tmp, "baton.toml"), "w") as f:
        f.write(f"""[daemon]
control_socket = "{sock}"
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
""")
    log = open(os.path.join(tmp, "batond.log"), "w")
    daemon = subprocess.Popen([os.path.join(build, "supervisor/batond"), "-c", os.path.join(tmp, "baton.toml")],
                              stderr=log)
    server = f"baton-top-{os.getpid()}"  # a tmux server of this test's own
    tmux = ["tmux", "-L", server, "-f", "/dev/null"]
    pane = lambda: subprocess.run(tmux + ["capture-pane", "-p", "-t", "top"], capture_output=True, text=True).stdout
    try:
        wait_for("batond", lambda: os.path.exists(sock) and api(sock, "GET", "/v1/status")[1]["services"][0]["state"]
                 == "running")
        subprocess.run(tmux + ["new-session", "-d", "-s", "top", "-x", "150", "-y", "45",
                               f"{build}/ctl/batonctl -s {sock} top; echo top exited $?; sleep 30"], check=True)
        def showing(*words):
            text = pane()
            return text if all(w in text for w in words) else None

        first = wait_for("the service and its workers", lambda: showing("web", "version v1", "ready", "MiB"))
        print(first)
        status, body = api(sock, "POST", "/v1/services/web/upgrade", {"version": "v2"})
        assert status == 200 and body["result"]["promoted"], body
        after = wait_for("v2 live and the promotion among the events", lambda: showing("version v2", "promoted"))
        print(after)
        subprocess.run(tmux + ["send-keys", "-t", "top", "q"], check=True)
        wait_for("top to quit", lambda: "top exited 0" in pane())
        print("top: every check passed")
        return 0
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
