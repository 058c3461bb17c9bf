# batond's control API over its Unix socket, with Python's standard library only.
# One request per connection, as batond serves them.
import http.client
import json
import socket

DEFAULT_SOCKET = "/run/baton/control.sock"


class BatonError(Exception):
    """batond could not be reached, or answered with an error."""

    def __init__(self, message, status=0, body=None):
        super().__init__(message)
        self.status = status
        self.body = body or {}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def call(socket_path, method, target, body=None, timeout=30):
    """Returns (status, parsed JSON body). Raises BatonError when batond is not there."""
    conn = _UnixConnection(socket_path, timeout)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, target, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as e:
        raise BatonError("cannot reach batond on %s: %s" % (socket_path, e))
    finally:
        conn.close()
    try:
        parsed = json.loads(raw.decode("utf-8", "replace")) if raw else {}
    except ValueError:
        parsed = {"raw": raw.decode("utf-8", "replace")}
    return response.status, parsed


def error_message(body, status):
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return err.get("message") or err.get("code") or "HTTP %d" % status
    return "batond answered HTTP %d" % status


def get(socket_path, target, timeout=30):
    """GET that must answer 200; otherwise BatonError with batond's message."""
    status, body = call(socket_path, "GET", target, timeout=timeout)
    if status != 200:
        raise BatonError(error_message(body, status), status, body)
    return body


def service_path(service):
    return "/v1/services/" + service
