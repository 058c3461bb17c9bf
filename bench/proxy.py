#!/usr/bin/env python3
"""Throughput and latency through batond's proxy mode, against HAProxy in TCP mode and a
direct connection, to the same backend on the same machine.

    python3 bench/proxy.py [--build build/release] [--seconds 10] [--baseline BUILD]

The backend is one nginx worker (sendfile on) started by batond in proxy mode: batond
forwards its public port to it, HAProxy 2.6 (mode tcp; with and without `option
splice-auto`) forwards another, and the direct case connects to the backend port itself.
Measured per path:
- small requests: bench/loadgen for --seconds, 4 keep-alive clients, then 4 clients
  opening a connection per request: requests per second, p50 and p99; measured in up to 5
  rounds that take the paths in turn, so that a slow minute of the machine falls on all;
- bulk: 4 clients each downloading a 256 MiB file 2 times: MiB/s;
- the proxy's own CPU time per small request (batond's or HAProxy's, all threads), which
  does not depend on how many cores the proxy takes from the load generator.
A last row gives batond's figures as a ratio of HAProxy's (mode tcp) in the same run. With
--baseline, an earlier build's batond is measured too, in front of a backend of its own, in
the same rounds, and another row gives this batond's figures as a ratio of that one's.
The load generator shares the machine's cores with the proxy and the backend.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port, wait_port  # noqa: E402
from scale import api, proc_stats  # noqa: E402

BIG = 256 * 2**20

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {run}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen 127.0.0.1:@BACKEND_PORT@;
        location = / {{ return 200 "version=v1\\n"; }}
        location = /big {{ alias {run}/big; }}
    }}
}}
"""


def download(port, times, totals, index):
    got = 0
    buf = bytearray(1 << 20)
    for _ in range(times):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /big HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            while n := s.recv_into(buf):
                got += n
    totals[index] = got


def bulk(port, clients=4, times=2):
    totals = [0] * clients
    threads = [threading.Thread(target=download, args=(port, times, totals, i)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if min(totals) < times * BIG:
        raise RuntimeError(f"a download came back short: {totals}")
    return sum(totals) / 2**20 / took


def small(build, port, seconds, fresh, proxy_pid=None):
    """(requests/s, p50 ms, p99 ms, the proxy's CPU ms per request or None)."""
    cpu0 = proc_stats(proxy_pid)[0] if proxy_pid else 0
    out = subprocess.run([os.path.join(build, "bench/loadgen"), "--port", str(port), "--fresh", str(4 if fresh else 0),
                          "--keepalive", str(0 if fresh else 4), "--seconds", str(seconds), "--json"],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    if r["failed"]:
        raise RuntimeError(f"failed requests: {r}")
    cpu = (proc_stats(proxy_pid)[0] - cpu0) * 1000 / r["ok"] if proxy_pid and r["ok"] else None
    return r["ok"] / seconds, r["p50_ms"], r["p99_ms"], cpu


def pooled(runs):
    """One figure from rounds of equal length: the mean rate, the median p50 and p99 of the
    rounds, and the proxy's CPU per request over all of them."""
    rate = statistics.mean(r[0] for r in runs)
    cpu = None
    if all(r[3] is not None for r in runs):
        cpu = sum(r[3] * r[0] for r in runs) / sum(r[0] for r in runs)
    return rate, statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs), cpu


def live_backend_port(sock, limit=20):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            _, status = api(sock, "GET", "/v1/services/web")
            for g in status["generations"]:
                if g["state"] == "live":
                    return g["workers"][0]["backend_ports"]["http"]
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the backend did not start")


def start_haproxy(tmp, backend_port, splice):
    port = free_port()
    conf = os.path.join(tmp, f"haproxy-{splice}.cfg")
    with open(conf, "w") as f:
        f.write(f"""global
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  {"option splice-auto" if splice else ""}
frontend f
  bind 127.0.0.1:{port}
  default_backend b
backend b
  server s 127.0.0.1:{backend_port}
""")
    proc = subprocess.Popen(["haproxy", "-f", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
    except RuntimeError:
        proc.kill()
        proc.wait()
        raise
    return proc, port


def start_batond(build, tmp, tag):
    """batond of `build` proxying to an nginx worker of its own; returns (process, public
    port, control socket). The process is returned before the backend is up, to be
    stopped if it never comes."""
    run = os.path.join(tmp, "run" + tag)
    os.makedirs(run)
    with open(os.path.join(run, "big"), "wb") as f:
        f.truncate(BIG)
    os.chmod(os.path.join(run, "big"), 0o644)
    with open(os.path.join(run, "nginx.conf.in"), "w") as f:
        f.write(NGINX_CONF.format(run=run))
    public = free_port()
    sock = os.path.join(tmp, f"ctl{tag}.sock")
    with open(os.path.join(tmp, f"baton{tag}.toml"), "w") as f:
        f.write(f"""[daemon]
control_socket = "{sock}"
state_dir = "{tmp}/state{tag}"
log_level = "warn"
[service.web]
command = ["/bin/sh", "-c", "sed s/@BACKEND_PORT@/$PORT/ {run}/nginx.conf.in > {run}/nginx.conf && exec nginx -p {run} -c {run}/nginx.conf"]
version = "v1"
[service.web.listen]
http = {{ address = "tcp://127.0.0.1:{public}", mode = "proxy" }}
[service.web.ready]
timeout = "10s"
""")
    return subprocess.Popen([os.path.join(build, "supervisor/batond"), "-c", os.path.join(tmp, f"baton{tag}.toml")],
                            stderr=open(os.path.join(tmp, f"batond{tag}.log"), "w")), public, sock


def collect(build, seconds, log=print, baseline=None):
    """Returns rows of (path, keep-alive req/s, p50, p99, CPU, fresh req/s, p50, p99, CPU,
    bulk MiB/s)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="baton-proxy-") as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers drop root
        daemons, haproxies = [], []  # appended as they start, so a failure stops the first
        try:
            daemon, public, sock = start_batond(build, tmp, "")
            daemons.append(daemon)
            backend = live_backend_port(sock)
            for splice in (False, True):
                haproxies.append(start_haproxy(tmp, backend, splice))
            paths = [("direct to the backend", backend, None), ("batond proxy mode (splice)", public, daemon.pid),
                     ("HAProxy 2.6 mode tcp", haproxies[0][1], haproxies[0][0].pid),
                     ("HAProxy 2.6 mode tcp, option splice-auto", haproxies[1][1], haproxies[1][0].pid)]
            if baseline:
                previous, previous_public, previous_sock = start_batond(baseline, tmp, "-previous")
                daemons.append(previous)
                live_backend_port(previous_sock)
                paths.append((f"previous batond ({baseline})", previous_public, previous.pid))
            # In short rounds, each path in turn (the order rotating), rather than all of one
            # path and then the next: this machine's speed drifts over minutes, and one path
            # measured in a slow minute moved the ratio by 0.25 between runs.
            rounds = max(1, min(5, int(seconds)))
            measured = {name: ([], []) for name, _, _ in paths}
            for r in range(rounds):
                for name, port, pid in paths[r % len(paths):] + paths[:r % len(paths)]:
                    measured[name][0].append(small(build, port, seconds / rounds, fresh=False, proxy_pid=pid))
                    measured[name][1].append(small(build, port, seconds / rounds, fresh=True, proxy_pid=pid))
            for name, port, pid in paths:
                ka, fresh = (pooled(measured[name][i]) for i in (0, 1))
                mib = bulk(port)
                rows.append((name, *ka, *fresh, mib))
                log(f"{name}: keep-alive {ka[0]:.0f} req/s p50 {ka[1]:.3f} ms p99 {ka[2]:.3f} ms; "
                    f"fresh {fresh[0]:.0f} req/s p50 {fresh[1]:.3f} ms p99 {fresh[2]:.3f} ms; bulk {mib:.0f} MiB/s; "
                    f"proxy CPU per request {cpu_text(ka[3])} keep-alive, {cpu_text(fresh[3])} fresh")
        finally:
            for proc, _ in haproxies:
                proc.terminate()
                proc.wait(timeout=30)
            for proc in daemons:
                proc.terminate()
                proc.wait(timeout=60)
    return rows


def cpu_text(ms):
    return "-" if ms is None else f"{ms * 1000:.0f} µs"


def markdown(rows):
    out = ["| path | keep-alive req/s | p50 | p99 | proxy CPU per request | new connection per request, req/s | p50 "
           "| p99 | proxy CPU per request | bulk MiB/s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, ka, ka50, ka99, kacpu, fr, fr50, fr99, frcpu, mib in rows:
        out.append(f"| {name} | {ka:.0f} | {ka50:.3f} ms | {ka99:.3f} ms | {cpu_text(kacpu)} | {fr:.0f} | "
                   f"{fr50:.3f} ms | {fr99:.3f} ms | {cpu_text(frcpu)} | {mib:.0f} |")
    ours = next((r for r in rows if r[0].startswith("batond")), None)
    # Higher is better for rates, lower for times: each ratio reads "batond is N times the other".
    for other, label in (("HAProxy 2.6 mode tcp", "batond / HAProxy mode tcp"),
                         ("previous batond", "batond / previous batond")):
        peer = next((r for r in rows if r[0].startswith(other)), None)
        if ours and peer:
            cells = []
            for i, v in enumerate(ours[1:], start=1):
                p = peer[i]
                cells.append("-" if v is None or p in (None, 0) else f"{v / p:.2f}x")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--baseline", metavar="BUILD", help="an earlier build whose batond is measured in the same rounds")
    args = ap.parse_args()
    rows = collect(args.build, args.seconds, baseline=args.baseline)
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
