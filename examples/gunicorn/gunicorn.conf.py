"""gunicorn settings for running under batond.

gunicorn takes its listener from LISTEN_FDS (systemd socket activation) when LISTEN_PID
is its own pid, which batond guarantees. Once a worker has loaded the app, it tells batond
with sd_notify READY=1 (batond accepts it from a descendant of the process it started);
batond then drains the previous generation (SIGTERM is gunicorn's graceful stop). An app
that fails to import never reports ready, so the handover fails and the old generation
keeps serving.
"""
import os
import socket

workers = 2
graceful_timeout = 30
keepalive = 5
accesslog = None

# gunicorn's arbiter sends READY=1 itself as soon as it starts, before any worker has
# loaded the app, which would let a release whose app cannot even be imported take over.
# Keep the socket for our own hook and hide it from the arbiter.
NOTIFY_SOCKET = os.environ.pop("NOTIFY_SOCKET", None)


def post_worker_init(worker):
    path = NOTIFY_SOCKET
    if path:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.send(f"READY=1\nSTATUS=gunicorn {os.environ.get('BATON_VERSION')} serving".encode())
