#!/usr/bin/env python3
"""Carries state across upgrades through batond's FD store (the sd_notify FDSTORE=1 protocol).

    counter.py VERSION

At start it looks among its inherited descriptors (LISTEN_FDNAMES) for one named
"counter": a memfd the previous generation left behind. It reads the number of starts so
far from it, adds its own, writes that into a new memfd and hands it to batond with
FDSTORE=1 FDNAME=counter, replacing the old one. Then it serves, from the listener at fd 3,
"version=VERSION starts=N", and reports READY=1. A real server would keep its session
cache, its warm state or a half-finished job's position this way.
"""
import http.server
import os
import socket
import sys

VERSION = sys.argv[1] if len(sys.argv) > 1 else "unknown"
if os.environ.get("LISTEN_PID") != str(os.getpid()):
    sys.exit("counter.py: run me under batond (LISTEN_FDS)")
names = os.environ.get("LISTEN_FDNAMES", "").split(":")
fds = {name: 3 + i for i, name in enumerate(names)}

starts = 1
if "counter" in fds:
    os.lseek(fds["counter"], 0, os.SEEK_SET)
    starts += int(os.read(fds["counter"], 64) or b"0")
    os.close(fds["counter"])

state = os.memfd_create("counter")
os.write(state, str(starts).encode())
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.connect(os.environ["NOTIFY_SOCKET"])
socket.send_fds(notify, [b"FDSTORE=1\nFDNAME=counter"], [state])
os.close(state)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"version={VERSION} starts={starts}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("", 0), Handler, bind_and_activate=False)
        self.socket = socket.socket(fileno=fds["http"])


server = Server()
notify.send(f"READY=1\nSTATUS=serving {VERSION}, start {starts}".encode())
server.serve_forever()
