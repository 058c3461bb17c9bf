#!/usr/bin/env python3
"""An HTTP server that binds its own port and may misbehave on purpose, to stand behind
batond's proxy in progressive handover tests.

    flaky_http.py VERSION PORT [--reset-every N]

Answers every request with "version=VERSION", keeping HTTP/1.1 connections open unless
the client asks to close. With --reset-every N, every Nth connection is reset (RST)
instead of answered.
"""
import socket
import socketserver
import struct
import sys

VERSION, PORT = sys.argv[1], int(sys.argv[2])
RESET_EVERY = int(sys.argv[sys.argv.index("--reset-every") + 1]) if "--reset-every" in sys.argv else 0
BODY = f"version={VERSION}\n".encode()
count = 0


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        global count
        count += 1
        if RESET_EVERY and count % RESET_EVERY == 0:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # now: the server's own shutdown(SHUT_WR) would send a FIN first
            return
        while True:
            request = self.rfile.readline()
            if not request:
                return
            keep_alive = request.rstrip().endswith(b"HTTP/1.1")
            while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                keep_alive = keep_alive and not line.lower().startswith(b"connection: close")
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
            self.wfile.write(head.encode() + BODY)
            if not keep_alive:
                return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


if __name__ == "__main__":
    print(f"flaky_http {VERSION} on port {PORT}", file=sys.stderr, flush=True)
    Server(("127.0.0.1", PORT), Handler).serve_forever()
