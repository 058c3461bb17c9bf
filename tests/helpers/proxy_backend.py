#!/usr/bin/env python3
"""A server that binds its own port, to stand behind batond's proxy in tests.

    proxy_backend.py VERSION PORT [--proxy-protocol]

Line commands on each connection (one thread per connection, connections kept open):
  version          -> "VERSION\\n"
  peer             -> the client address as "HOST:PORT\\n" (from the PROXY v2 header if enabled)
  sink             -> reads everything until the client half-closes, then answers
                      "BYTES CRC32\\n" and closes
  source N         -> sends N bytes (byte i is i*7 % 251), half-closes, then logs to stderr
                      every line the client still sends
  reset            -> closes the connection with a reset (RST)
  unlisten         -> stops listening (the process stays): new connections are refused
"""
import socket
import struct
import sys
import threading
import zlib

VERSION, PORT = sys.argv[1], int(sys.argv[2])
PROXY_PROTOCOL = "--proxy-protocol" in sys.argv
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PATTERN = bytes(i * 7 % 251 for i in range(251 * 4096))


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed inside the PROXY header")
        data += chunk
    return data


def proxy_header(conn, peer):
    head = read_exact(conn, 16)
    if head[:12] != SIGNATURE:
        raise ConnectionError("no PROXY v2 header")
    body = read_exact(conn, struct.unpack("!H", head[14:16])[0])
    if head[13] == 0x11:
        src, port = socket.inet_ntop(socket.AF_INET, body[0:4]), struct.unpack("!H", body[8:10])[0]
        return f"{src}:{port}"
    if head[13] == 0x21:
        src, port = socket.inet_ntop(socket.AF_INET6, body[0:16]), struct.unpack("!H", body[32:34])[0]
        return f"[{src}]:{port}"
    return "local"


def serve(conn, peer):
    with conn:
        if PROXY_PROTOCOL:
            peer = proxy_header(conn, peer)
        f = conn.makefile("rb")
        for line in f:
            words = line.split()
            if words == [b"version"]:
                conn.sendall(VERSION.encode() + b"\n")
            elif words == [b"peer"]:
                conn.sendall(peer.encode() + b"\n")
            elif words == [b"sink"]:
                total, crc = 0, 0
                while chunk := f.read1(1 << 16):
                    total += len(chunk)
                    crc = zlib.crc32(chunk, crc)
                conn.sendall(f"{total} {crc}\n".encode())
                return
            elif words == [b"reset"]:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            elif words == [b"unlisten"]:
                LISTENER.shutdown(socket.SHUT_RDWR)
                conn.sendall(b"unlistened\n")
            elif len(words) == 2 and words[0] == b"source":
                left = int(words[1])
                while left > 0:
                    piece = PATTERN[:min(left, len(PATTERN))]
                    conn.sendall(piece)
                    left -= len(piece)
                conn.shutdown(socket.SHUT_WR)
                for rest in f:
                    print(f"after half-close: {rest.decode().strip()}", file=sys.stderr, flush=True)
                return


LISTENER = socket.socket()


def main():
    LISTENER.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    LISTENER.bind(("127.0.0.1", PORT))
    LISTENER.listen(128)
    print(f"proxy_backend {VERSION} on port {PORT}", file=sys.stderr, flush=True)
    while True:
        try:
            conn, addr = LISTENER.accept()
        except OSError:  # unlisten: stay alive without a listener
            threading.Event().wait()
        threading.Thread(target=serve, args=(conn, f"{addr[0]}:{addr[1]}"), daemon=True).start()


if __name__ == "__main__":
    main()
