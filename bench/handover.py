#!/usr/bin/env python3
"""Handover benchmark: batond supervising the test worker, N upgrades under load.

Prints how long each handover took (as batond measured it and as batonctl saw it), and
what the clients saw meanwhile: requests, failures, latency percentiles. Uses only the
Python standard library and the project's own binaries.

    python3 bench/handover.py [--build build/release] [--upgrades 50] [--clients 8]
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def api(sock_path, method, path, body=None):
    conn = http.client.HTTPConnection("localhost")
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(sock_path)
    conn.request(method, path, body=json.dumps(body) if body is not None else None)
    res = conn.getresponse()
    return res.status, json.loads(res.read() or b"null")


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--upgrades", type=int, default=50)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--replicas", type=int, default=2)
    args = ap.parse_args()

    batond = os.path.join(args.build, "supervisor/batond")
    worker = os.path.abspath(os.path.join(args.build, "tests/test_worker"))
    tmp = tempfile.mkdtemp(prefix="baton-bench-")
    sock = os.path.join(tmp, "ctl.sock")
    with open(os.path.join(tmp, "baton.toml"), "w") as f:
        f.write(f"""
[daemon]
control_socket = "{sock}"
state_dir = "{tmp}/state"
log_level = "warn"
[service.web]
command = ["{worker}", "--version", "{{version}}", "--notify"]
version = "v0"
replicas = {args.replicas}
bake_time = "0s"
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.ready]
notify = true
[service.web.stop]
timeout = "5s"
""")
    daemon = subprocess.Popen([batond, "-c", os.path.join(tmp, "baton.toml")], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                status, svc = api(sock, "GET", "/v1/services/web")
                if svc and svc.get("state") == "running":
                    break
            except OSError:
                pass
            time.sleep(0.05)
        port = int(svc["listeners"][0]["address"].rsplit(":", 1)[1])

        stop = threading.Event()
        lock = threading.Lock()
        latencies, failures = [], []

        def client():
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    c.request("GET", "/")
                    body = c.getresponse().read()
                    c.close()
                    ok = body.startswith(b"version=")
                except Exception as e:  # noqa: BLE001 - every failure counts
                    ok = False
                    with lock:
                        failures.append(repr(e))
                with lock:
                    if ok:
                        latencies.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        handover_batond, handover_client = [], []
        started = time.perf_counter()
        for i in range(args.upgrades):
            t0 = time.perf_counter()
            status, body = api(sock, "POST", "/v1/services/web/upgrade", {"version": f"v{i + 1}"})
            handover_client.append(time.perf_counter() - t0)
            if status != 200:
                print("upgrade failed:", body, file=sys.stderr)
                return 1
            handover_batond.append(body["result"]["duration_s"])
        elapsed = time.perf_counter() - started
        stop.set()
        for t in threads:
            t.join()
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)

    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    print(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}")
    print(f"{args.upgrades} upgrades of {args.replicas} workers under {args.clients} clients "
          f"(fresh connection per request) in {elapsed:.1f} s")
    print(f"handover (batond: spawn -> all READY=1 -> promoted): median {ms(statistics.median(handover_batond))}, "
          f"p99 {ms(percentile(handover_batond, 99))}, max {ms(max(handover_batond))}")
    print(f"handover (client: request -> answer):             median {ms(statistics.median(handover_client))}, "
          f"p99 {ms(percentile(handover_client, 99))}")
    print(f"requests: {len(latencies)} ok, {len(failures)} failed")
    print(f"request latency: p50 {ms(percentile(latencies, 50))}, p99 {ms(percentile(latencies, 99))}, "
          f"max {ms(max(latencies))}")
    if failures:
        print("failures:", failures[:5])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
