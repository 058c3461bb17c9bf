#!/usr/bin/env python3
"""Latency through an SSH tunnel: batond's [tunnel] against OpenSSH's own `ssh -N -R`, to
the same worker, through the same stock sshd edge on loopback.

    python3 bench/tunnel.py [--build build/release] [--seconds 5] [--rounds 3]

The worker is the test worker (tests/test_worker), started by batond on a listener of its
own; the edge is /usr/sbin/sshd with remote forwarding allowed. batond's tunnel forwards
one remote port to the listener; `ssh -N -R` forwards another to the same listener. Each
path gets bench/loadgen in turn (2 keep-alive clients, then 2 clients opening a connection
per request), --rounds times, alternating: requests per second, p50 and p99, medians of
the rounds. Needs root (sshd) and openssh-server.
"""
import argparse
import getpass
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port, wait_port  # noqa: E402
from scale import api  # noqa: E402


class Edge:
    """A stock sshd on loopback that accepts one client key and allows remote forwarding."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        os.makedirs("/run/sshd", exist_ok=True)
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{tmp}/{key}"], check=True)
        with open(f"{tmp}/authorized_keys", "w") as f:
            f.write(open(f"{tmp}/client_key.pub").read())
        os.chmod(f"{tmp}/authorized_keys", 0o600)
        host_pub = open(f"{tmp}/host_key.pub").read().rsplit(" ", 1)[0]
        with open(f"{tmp}/known_hosts", "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {host_pub}\n")
        with open(f"{tmp}/sshd_config", "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {tmp}/host_key\nPidFile {tmp}/sshd.pid\n"
                    f"AuthorizedKeysFile {tmp}/authorized_keys\nUsePAM no\nStrictModes no\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "PermitRootLogin prohibit-password\nAllowTcpForwarding remote\nPermitListen any\n")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{tmp}/sshd_config"],
                                     stderr=open(f"{tmp}/sshd.log", "w"))
        wait_port(self.port)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def loadgen(build, port, seconds, fresh):
    out = subprocess.run([os.path.join(build, "bench/loadgen"), "--port", str(port), "--fresh", str(2 if fresh else 0),
                          "--keepalive", str(0 if fresh else 2), "--seconds", str(seconds), "--json"],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    return r["ok"] / seconds, r["p50_ms"], r["p99_ms"], r["failed"]


def collect(build, seconds, rounds, log=print):
    tmp = tempfile.mkdtemp(prefix="baton-tunnel-bench-")
    edge = Edge(tmp)
    worker = os.path.abspath(os.path.join(build, "tests/test_worker"))
    listen_port, baton_remote, ssh_remote = free_port(), free_port(), free_port()
    sock = f"{tmp}/ctl.sock"
    with open(f"{tmp}/baton.toml", "w") as f:
        f.write(f"""[daemon]
control_socket = "{sock}"
state_dir = "{tmp}/state"
log_level = "warn"
[service.web]
command = ["{worker}", "--version", "{{version}}", "--notify"]
version = "v1"
[service.web.listen]
http = "tcp://127.0.0.1:{listen_port}"
[service.web.ready]
notify = true
[tunnel.edge]
edges = ["127.0.0.1:{edge.port}"]
user = "{getpass.getuser()}"
identity = "{tmp}/client_key"
known_hosts = "{tmp}/known_hosts"
remote_bind = "127.0.0.1:{baton_remote}"
to = "web.http"
""")
    batond = subprocess.Popen([os.path.join(build, "supervisor/batond"), "-c", f"{tmp}/baton.toml"],
                              stderr=open(f"{tmp}/batond.log", "w"))
    ssh = None
    try:
        wait_port(listen_port)
        wait_port(baton_remote)
        ssh = subprocess.Popen(["ssh", "-N", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={tmp}/known_hosts",
                                "-o", "ExitOnForwardFailure=yes", "-i", f"{tmp}/client_key", "-p", str(edge.port),
                                "-R", f"127.0.0.1:{ssh_remote}:127.0.0.1:{listen_port}",
                                f"{getpass.getuser()}@127.0.0.1"], stderr=open(f"{tmp}/ssh.log", "w"))
        wait_port(ssh_remote)
        paths = [("direct to the worker", listen_port), ("batond's tunnel", baton_remote),
                 ("OpenSSH `ssh -N -R`", ssh_remote)]
        results = {name: {False: [], True: []} for name, _ in paths}
        for r in range(rounds):
            for name, port in paths[r % len(paths):] + paths[:r % len(paths)]:
                for fresh in (False, True):
                    got = loadgen(build, port, seconds, fresh)
                    results[name][fresh].append(got)
                    log(f"round {r + 1} {name} {'fresh' if fresh else 'keep-alive'}: "
                        f"{got[0]:.0f} req/s, p50 {got[1]:.3f} ms, p99 {got[2]:.3f} ms, {got[3]} failed")
        _, status = api(sock, "GET", "/v1/status")
        session = status["tunnels"][0]["sessions"][0]
        rows = []
        for name, _ in paths:
            row = [name]
            for fresh in (False, True):
                runs = results[name][fresh]
                row += [statistics.median(x[0] for x in runs), statistics.median(x[1] for x in runs),
                        statistics.median(x[2] for x in runs), sum(x[3] for x in runs)]
            rows.append(row)
        log(f"batond's session: {session.get('connects')} connect(s), {session.get('channels_total')} channels")
        return rows
    finally:
        if ssh:
            ssh.terminate()
            ssh.wait(timeout=10)
        batond.send_signal(signal.SIGTERM)
        batond.wait(timeout=30)
        edge.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def markdown(rows):
    lines = ["| path | keep-alive req/s | p50 | p99 | new connection per request, req/s | p50 | p99 | failed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, kr, k50, k99, kf, fr, f50, f99, ff in rows:
        lines.append(f"| {name} | {kr:.0f} | {k50:.3f} ms | {k99:.3f} ms | {fr:.0f} | {f50:.3f} ms | {f99:.3f} ms | "
                     f"{kf + ff} |")
    by = {r[0]: r for r in rows}
    b, o = by["batond's tunnel"], by["OpenSSH `ssh -N -R`"]
    lines.append(f"| batond / OpenSSH | {b[1] / o[1]:.2f}x | | {o[3] / b[3]:.2f}x better | {b[5] / o[5]:.2f}x | | "
                 f"{o[7] / b[7]:.2f}x better | |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows = collect(args.build, args.seconds, args.rounds)
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
