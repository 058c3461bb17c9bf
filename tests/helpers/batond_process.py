"""What the Python tests of a real batond share: starting and stopping it in a
temporary directory, calling its control socket, and waiting on a condition with a
deadline."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def api(sock, method, path, body=None):
    """One request on the control socket: (HTTP status, parsed JSON body)."""
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
    """Polls `condition` until it returns something true, and returns that. An exception
    counts as not yet (a page redrawing may replace an element under us)."""
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        try:
            last = condition()
            if last:
                return last
        except Exception as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last:\n{last!r}")


class Batond:
    """batond from BUILD in a temporary directory: `config(tmp)` gives baton.toml's text,
    whose control socket must be TMP/ctl.sock. Stopped with SIGTERM (then SIGKILL) on
    exit; its log is printed when the block failed."""

    def __init__(self, build, config, prefix="baton-test-"):
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.sock = os.path.join(self.tmp, "ctl.sock")
        with open(os.path.join(self.tmp, "baton.toml"), "w") as f:
            f.write(config(self.tmp))
        self.log = open(os.path.join(self.tmp, "batond.log"), "w")
        self.proc = subprocess.Popen([os.path.join(build, "supervisor/batond"), "-c",
                                      os.path.join(self.tmp, "baton.toml")], stderr=self.log)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, trace):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if kind is not None:
            with open(os.path.join(self.tmp, "batond.log")) as f:
                print("batond's log:\n" + f.read()[-4000:])
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False
