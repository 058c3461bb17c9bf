#!/usr/bin/env python3
"""What kernel steering costs: the same nginx behind each of batond's three listener modes,
side by side in one run.

    python3 bench/steering.py [--build build/release] [--seconds 5] [--rounds 3]

One batond runs three services, each one nginx worker (worker_processes 1) answering a
small response: "kernel" (the default: a socket per generation in a reuseport group, a BPF
program picking the socket of each new connection), "shared" (steering = "shared": one
socket for every generation) and "proxy" (mode = "proxy": batond accepts and splices to
the worker's own port). For each, bench/loadgen runs --seconds with 4 keep-alive clients,
then with 4 clients opening a connection per request; the three modes alternate for
--rounds rounds (each round starting with the next mode) and the median of each is
reported, with the ratios kernel/shared and
kernel/proxy. The load generator shares the machine's cores with nginx and batond.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port  # noqa: E402
from proxy import small  # noqa: E402
from scale import api  # noqa: E402

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {run}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; accept_mutex on; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen 127.0.0.1:@PORT@;
        location = / {{ return 200 "version=v1\\n"; }}
    }}
}}
"""

MODES = {
    "kernel": 'http = "tcp://127.0.0.1:{port}"',
    "shared": 'http = {{ address = "tcp://127.0.0.1:{port}", steering = "shared" }}',
    "proxy": 'http = {{ address = "tcp://127.0.0.1:{port}", mode = "proxy" }}',
}


def config(tmp, sock, ports):
    text = f'[daemon]\ncontrol_socket = "{sock}"\nstate_dir = "{tmp}/state"\nlog_level = "warn"\n'
    for mode, port in ports.items():
        run = os.path.join(tmp, mode)
        os.makedirs(run)
        with open(os.path.join(run, "nginx.conf.in"), "w") as f:
            f.write(NGINX_CONF.format(run=run))
        # Inherited: nginx adopts the socket in NGINX= whose address its listen names.
        # Proxied: it binds the port batond gives it ($PORT).
        listen_port = "$PORT" if mode == "proxy" else str(port)
        text += f"""
[service.{mode}]
command = ["/bin/sh", "-c", "sed s/@PORT@/{listen_port}/ {run}/nginx.conf.in > {run}/nginx.conf && exec nginx -p {run} -c {run}/nginx.conf"]
version = "v1"
[service.{mode}.listen]
{MODES[mode].format(port=port)}
[service.{mode}.ready]
tcp = "127.0.0.1:{{port:http}}"
timeout = "10s"
interval = "20ms"
[service.{mode}.stop]
signal = "QUIT"
"""
    return text


def wait_running(sock, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            status, body = api(sock, "GET", "/v1/status")
            if status == 200 and all(s["state"] == "running" for s in body["services"]):
                return body
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the services did not start")


def collect(build, seconds, rounds, log=print):
    """Returns {mode: {"keepalive": [req/s...], "fresh": [req/s...]}} and the modes seen in the status."""
    results = {mode: {"keepalive": [], "fresh": []} for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="baton-steering-") as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers drop root
        sock = os.path.join(tmp, "ctl.sock")
        ports = {mode: free_port() for mode in MODES}
        with open(os.path.join(tmp, "baton.toml"), "w") as f:
            f.write(config(tmp, sock, ports))
        daemon = subprocess.Popen([os.path.join(build, "supervisor/batond"), "-c", os.path.join(tmp, "baton.toml")],
                                  stderr=open(os.path.join(tmp, "batond.log"), "w"))
        try:
            status = wait_running(sock)
            modes = {s["name"]: s["listeners"][0]["mode"] for s in status["services"]}
            if modes != {m: m for m in MODES}:
                raise RuntimeError(f"listener modes are not as configured: {modes}")
            order = list(ports.items())
            for r in range(rounds):
                # Each round starts with another mode, so that none always follows the same one.
                for mode, port in order[r % len(order):] + order[:r % len(order)]:
                    ka = small(build, port, seconds, fresh=False)[0]
                    fresh = small(build, port, seconds, fresh=True)[0]
                    results[mode]["keepalive"].append(ka)
                    results[mode]["fresh"].append(fresh)
                    log(f"round {r + 1} {mode}: keep-alive {ka:.0f} req/s, new connection per request {fresh:.0f} req/s")
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    return results


def markdown(results):
    med = {m: {k: statistics.median(v) for k, v in r.items()} for m, r in results.items()}
    out = ["| listener mode | keep-alive req/s (median) | new connection per request, req/s (median) |",
           "|---|---:|---:|"]
    for mode in MODES:
        spread = {k: f"{min(v):.0f}-{max(v):.0f}" for k, v in results[mode].items()}
        out.append(f"| {mode} | {med[mode]['keepalive']:.0f} ({spread['keepalive']}) | "
                   f"{med[mode]['fresh']:.0f} ({spread['fresh']}) |")
    for other in ("shared", "proxy"):
        out.append(f"| kernel / {other} | {med['kernel']['keepalive'] / med[other]['keepalive']:.2f}x | "
                   f"{med['kernel']['fresh'] / med[other]['fresh']:.2f}x |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not (0 < args.seconds <= 600 and 0 < args.rounds <= 100):
        ap.error("--seconds and --rounds out of range")
    results = collect(args.build, args.seconds, args.rounds)
    print()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
