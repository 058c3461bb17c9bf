#!/usr/bin/env python3
"""A UDP worker for the steering tests: answers every datagram on the socket it was given
(fd 3, LISTEN_FDS) with "version=VERSION", and tells batond it is ready with sd_notify,
unless --never-ready. Stops on SIGTERM, once it has answered what waits."""
import os
import signal
import socket
import sys

version = sys.argv[1]
never_ready = "--never-ready" in sys.argv
if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
    sys.exit("udp_echo: expected one socket in LISTEN_FDS for this pid")
sock = socket.socket(fileno=3)
sock.settimeout(0.2)
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
if not never_ready:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = os.environ["NOTIFY_SOCKET"]
    notify.sendto(b"READY=1", "\0" + path[1:] if path.startswith("@") else path)
print(f"udp_echo {version} serving", file=sys.stderr, flush=True)
while not stop:
    try:
        data, peer = sock.recvfrom(2048)
    except socket.timeout:
        continue
    except InterruptedError:
        continue
    sock.sendto(b"version=" + version.encode() + b" " + data, peer)
# A well-behaved server answers what already waits in its socket before it goes.
sock.setblocking(False)
while True:
    try:
        data, peer = sock.recvfrom(2048)
    except (BlockingIOError, InterruptedError):
        break
    sock.sendto(b"version=" + version.encode() + b" " + data, peer)
