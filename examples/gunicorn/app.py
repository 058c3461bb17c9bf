"""A small WSGI app that reports its version (the BATON_VERSION batond sets)."""
import os

VERSION = os.environ.get("BATON_VERSION", "unknown")


def application(environ, start_response):
    body = f"version={VERSION} pid={os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
