#!/usr/bin/env python3
"""A plain Python HTTP server that takes its listening socket from batond.

It follows the systemd socket-activation convention (LISTEN_FDS, LISTEN_PID, fd 3, taken
with socket.fromfd), tells batond it is ready with sd_notify READY=1 (or by running
systemd-notify --ready, with --systemd-notify), and drains on SIGTERM: it stops
accepting, finishes the request in hand and exits.
Usage: server.py VERSION [--crash-after SECONDS] [--fail] [--systemd-notify] [--bind [HOST:]PORT]
                 [--probe-port PORT]

--bind [HOST:]PORT makes it bind HOST:PORT (127.0.0.1 by default) itself instead, as
servers do under supervisors that do not pass sockets (the benchmarks compare the two).
--probe-port PORT also answers on 127.0.0.1:PORT, a private port for batond's probes.
With WATCHDOG_USEC set (batond's health.watchdog), it sends WATCHDOG=1 three times a period.
"""
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time

version = sys.argv[1] if len(sys.argv) > 1 else "unknown"
crash_after = float(sys.argv[sys.argv.index("--crash-after") + 1]) if "--crash-after" in sys.argv else None

if "--fail" in sys.argv:
    print(f"server {version}: cannot load configuration: missing key 'db.url'", file=sys.stderr, flush=True)
    sys.exit(78)

bind_to = None
if "--bind" in sys.argv:
    host, _, port = sys.argv[sys.argv.index("--bind") + 1].rpartition(":")
    bind_to = (host or "127.0.0.1", int(port))
if bind_to is None and (os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1):
    sys.exit("server: expected a socket from batond (LISTEN_FDS/LISTEN_PID)")


class Handler(http.server.BaseHTTPRequestHandler):
    # One request per connection: the server handles connections one at a time, so that a
    # connection it accepted is always answered before it stops on SIGTERM.
    protocol_version = "HTTP/1.1"
    timeout = 10

    def do_GET(self):
        body = f"version={version} pid={os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class InheritedServer(http.server.HTTPServer):
    def __init__(self):
        if bind_to is not None:
            super().__init__(bind_to, Handler)
            return
        super().__init__(("", 0), Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = socket.fromfd(3, socket.AF_INET, socket.SOCK_STREAM)
        os.close(3)


def notify(message):
    path = os.environ.get("NOTIFY_SOCKET")
    if path:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.send(message.encode())


stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, on_term)
if "--probe-port" in sys.argv:
    probe = http.server.HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--probe-port") + 1])), Handler)
    threading.Thread(target=probe.serve_forever, daemon=True).start()
watchdog_every = None
if os.environ.get("WATCHDOG_PID") == str(os.getpid()):
    watchdog_every = int(os.environ.get("WATCHDOG_USEC", "0")) / 3e6
last_ping = time.monotonic()
server = InheritedServer()
server.timeout = 0.2
started = time.monotonic()
print(f"server {version}: serving on the inherited socket", file=sys.stderr, flush=True)
if "--systemd-notify" in sys.argv:
    subprocess.run(["systemd-notify", "--ready", f"--status=serving version {version}"], check=True)
else:
    notify(f"READY=1\nSTATUS=serving version {version}")
while not stopping:
    if crash_after is not None and time.monotonic() - started > crash_after:
        print(f"server {version}: segmentation fault (simulated)", file=sys.stderr, flush=True)
        os._exit(139)
    if watchdog_every and time.monotonic() - last_ping >= watchdog_every:
        notify("WATCHDOG=1")
        last_ping = time.monotonic()
    server.handle_request()
print(f"server {version}: drained, exiting", file=sys.stderr, flush=True)
