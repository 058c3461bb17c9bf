#!/usr/bin/env python3
"""batond's own costs: handover latency it adds, idle cost, status latency, cold start.

    python3 bench/scale.py [--build build/release] [--baseline BUILD] [--quick]

With --baseline, every measure is taken for both builds in the same run, and the table
gives the ratio of the headline figures (previous / this: above 1 means faster or smaller
now). Both builds supervise this build's test workers, so the ratios are batond's own.

1. Supervisor-added handover latency: from the new generation's last `ready` event to the
   old generation's `draining` event (batond's own reaction time), p50/p99 over many
   handovers; and the whole upgrade's wall time, for replicas 1 and 16, with a worker that
   is ready at once (sd_notify right after start). Beside it, the floor: the same 16
   workers started and ready with nothing supervised (bench/spawn_floor); and 1000 of them
   beside the cold start (4).
2. Idle: batond's RSS, CPU time and context switches (its wakeups) over 60 s with 100
   workers and no probes.
3. GET /v1/status latency with 1000 workers, and one service's status, to the answer's
   last byte, with batond's CPU per request.
4. Cold start of 1000 workers (10 services x 100): batond start until all are ready.
5. Self-upgrade with 1000 workers: from the old program's exec to the new one having
   taken everything over (batond's own figure), and as the client sees it (request to
   outcome in the status).
Uses only the standard library and the project's binaries.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def api(sock_path, method, path, body=None, timeout=60):
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.settimeout(timeout)
    conn.sock.connect(sock_path)
    conn.request(method, path, body=json.dumps(body) if body is not None else None)
    res = conn.getresponse()
    return res.status, json.loads(res.read() or b"null")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def worker_of(build):
    return os.path.abspath(os.path.join(build, "tests/test_worker"))


class Daemon:
    def __init__(self, build, services, worker=None):
        """batond of `build` supervising `worker` (by default the build's own test worker)."""
        self.tmp = tempfile.mkdtemp(prefix="baton-scale-")
        self.sock = os.path.join(self.tmp, "ctl.sock")
        worker = worker or worker_of(build)
        text = f'[daemon]\ncontrol_socket = "{self.sock}"\nstate_dir = "{self.tmp}/state"\nlog_level = "warn"\n'
        for name, replicas in services:
            text += f"""
[service.{name}]
command = ["{worker}", "--version", "{{version}}", "--notify"]
version = "v0"
replicas = {replicas}
bake_time = "0s"
[service.{name}.listen]
http = "tcp://127.0.0.1:0"
[service.{name}.ready]
notify = true
timeout = "120s"
[service.{name}.stop]
timeout = "10s"
"""
        with open(os.path.join(self.tmp, "baton.toml"), "w") as f:
            f.write(text)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([os.path.join(build, "supervisor/batond"), "-c", os.path.join(self.tmp, "baton.toml")],
                                     stderr=open(os.path.join(self.tmp, "batond.log"), "w"))

    def wait_running(self, limit=300):
        deadline = time.time() + limit
        while time.time() < deadline:
            try:
                status, body = api(self.sock, "GET", "/v1/status")
                if status == 200 and all(s["state"] == "running" for s in body["services"]):
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("services did not become ready")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        shutil.rmtree(self.tmp, ignore_errors=True)


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    switches = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if "ctxt_switches" in line:  # voluntary and involuntary: every time batond ran
                switches += int(line.split()[-1])
    return cpu, rss, switches


def handover_latency(build, replicas, rounds, worker=None):
    d = Daemon(build, [("web", replicas)], worker)
    try:
        d.wait_running()
        reaction, wall = [], []
        cpu0, _, _ = proc_stats(d.proc.pid)
        peak_rss = 0
        for i in range(rounds):
            events = []
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(d.sock)
            conn.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            t0 = time.perf_counter()
            status, body = api(d.sock, "POST", "/v1/services/web/upgrade", {"version": f"v{i + 1}"})
            wall.append(time.perf_counter() - t0)
            assert status == 200, body
            new_gen = body["result"]["generation"]
            old_gen = body["result"]["from_generation"]
            conn.settimeout(5)
            buf = b""
            while b'"draining"' not in buf or b'"promoted"' not in buf:
                buf += conn.recv(65536)
            conn.close()
            for line in buf.split(b"\n"):
                if line.startswith(b"{"):
                    events.append(json.loads(line))
            last_ready = max(e["time"] for e in events if e["type"] == "ready" and e.get("generation") == new_gen)
            draining = next(e["time"] for e in events if e["type"] == "draining" and e.get("generation") == old_gen)
            reaction.append(draining - last_ready)
            peak_rss = max(peak_rss, proc_stats(d.proc.pid)[1])
        cpu1, _, _ = proc_stats(d.proc.pid)
        return reaction, wall, (cpu1 - cpu0) / rounds, peak_rss
    finally:
        d.stop()


def spawn_floor(build, count, rounds):
    """bench/spawn_floor's time from the first spawn to the last READY=1 of `count` of the
    build's test workers, started with nothing supervised: the floor under an upgrade of
    `count` replicas."""
    tool = os.path.join(build, "bench/spawn_floor")
    command = [worker_of(build), "--version", "floor", "--notify"]
    out = subprocess.run([tool, "--count", str(count), "--rounds", str(rounds), "--"] + command,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{tool} failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    return result["p50_ms"] / 1000, result["p99_ms"] / 1000


def self_upgrades(d, rounds):
    """Replaces batond's program `rounds` times; returns (took, seen) in seconds."""
    took, seen = [], []
    _, before = api(d.sock, "GET", "/v1/status")
    for _ in range(rounds):
        t0 = time.perf_counter()
        status, body = api(d.sock, "POST", "/v1/self-upgrade", {})
        assert status == 202, body
        while True:
            try:
                status, now = api(d.sock, "GET", "/v1/status")
            except OSError:
                continue
            last = now["daemon"]["self_upgrade"].get("last")
            if status == 200 and last and last["attempt"] == body["attempt"]:
                break
        seen.append(time.perf_counter() - t0)
        assert last["ok"] and now["daemon"]["pid"] == before["daemon"]["pid"], last
        took.append(last["duration_ms"] / 1000)
    return took, seen


def raw_get(sock_path, path):
    """One GET on the control socket, timed to the answer's last byte (no JSON parsing:
    the client's own parsing of a large answer is not batond's latency)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    size = 0
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        size += len(chunk)
    s.close()
    return size


def status_latency(d, path, rounds):
    lat = []
    cpu0 = proc_stats(d.proc.pid)[0]
    for _ in range(rounds):
        t0 = time.perf_counter()
        size = raw_get(d.sock, path)
        lat.append(time.perf_counter() - t0)
    cpu = (proc_stats(d.proc.pid)[0] - cpu0) / rounds
    return lat, cpu, size


def collect(build, quick, log=print, worker_build=None):
    """Runs every measurement; returns rows of (measure, figure, headline value in seconds
    or bytes, for ratios: lower is better). The workers are the test workers of
    `worker_build` (by default `build`)."""
    worker_build = worker_build or build
    worker = worker_of(worker_build)
    ms = lambda v: f"{v * 1000:.2f} ms"  # noqa: E731
    rows = []

    def add(measure, figure, value):
        rows.append((measure, figure, value))
        log(f"{measure}: {figure}")

    rounds = 20 if quick else 100
    for replicas in (1, 16):
        reaction, wall, cpu, rss = handover_latency(build, replicas, rounds, worker)
        add(f"batond's reaction, last `ready` -> old generation told to drain, {replicas} replica(s), {rounds} handovers",
            f"p50 {ms(statistics.median(reaction))}, p99 {ms(pct(reaction, 99))}", statistics.median(reaction))
        add(f"upgrade wall time seen by the client, {replicas} replica(s)",
            f"p50 {ms(statistics.median(wall))}, p99 {ms(pct(wall, 99))}", statistics.median(wall))
        add(f"batond during those handovers, {replicas} replica(s)",
            f"{ms(cpu)} CPU per handover, peak RSS {rss / 2**20:.1f} MiB", cpu)
    # Measured in both passes of a --baseline run: the two figures show the machine's drift.
    p50, p99 = spawn_floor(worker_build, 16, rounds)
    add("floor: the same 16 workers started until the last READY=1 with nothing supervised (bench/spawn_floor)",
        f"p50 {ms(p50)}, p99 {ms(p99)}", p50)

    window = 10 if quick else 60
    d = Daemon(build, [("idle", 100)], worker=worker)
    try:
        d.wait_running()
        time.sleep(2)  # let start-up settle before measuring
        cpu0, _, sw0 = proc_stats(d.proc.pid)
        time.sleep(window)
        cpu1, rss, sw1 = proc_stats(d.proc.pid)
        add(f"idle with 100 workers, no probes, {window} s",
            f"RSS {rss / 2**20:.1f} MiB, {cpu1 - cpu0:.3f} s CPU, {sw1 - sw0} context switches", rss)
    finally:
        d.stop()

    floor, _ = spawn_floor(worker_build, 1000, 1)
    add("floor: 1000 such workers started until the last READY=1 with nothing supervised (bench/spawn_floor)",
        f"{floor:.2f} s", floor)
    d = Daemon(build, [(f"s{i}", 100) for i in range(10)], worker=worker)
    try:
        took = d.wait_running()
        cpu = proc_stats(d.proc.pid)[0]
        add("cold start of 1000 workers (10 services x 100)", f"all ready after {took:.2f} s ({cpu:.2f} s CPU in batond)",
            took)
        requests = 50 if quick else 300
        for path, what in (("/v1/status", "`GET /v1/status` with 1000 workers"),
                           ("/v1/services/s3", "`GET /v1/services/s3`, one service of 100 workers")):
            lat, cpu, size = status_latency(d, path, requests)
            add(f"{what} ({requests} requests, to the last byte)",
                f"p50 {ms(statistics.median(lat))}, p99 {ms(pct(lat, 99))}; {ms(cpu)} CPU each; {size // 1024} KiB",
                pct(lat, 99))
        add("batond RSS with 1000 workers", f"{proc_stats(d.proc.pid)[1] / 2**20:.1f} MiB", proc_stats(d.proc.pid)[1])
        upgrades = 5 if quick else 20
        took, seen = self_upgrades(d, upgrades)
        add(f"self-upgrade with 1000 workers ({upgrades} times): exec to everything taken over",
            f"p50 {ms(statistics.median(took))}, max {ms(max(took))}", statistics.median(took))
        add("self-upgrade with 1000 workers, as the client sees it (request to outcome in the status)",
            f"p50 {ms(statistics.median(seen))}, max {ms(max(seen))}", statistics.median(seen))
    finally:
        d.stop()
    return rows


def compared(build, baseline, quick, log=print):
    """The same measures for `baseline` (an earlier build) and `build`, one after the other in
    one run: rows of (measure, baseline figure, figure, baseline/this on the headline
    value: above 1 is better now). Both supervise this build's test worker, so the ratios
    are batond's alone."""
    log(f"-- baseline: {baseline}")
    before = collect(baseline, quick, log, worker_build=build)
    log(f"-- this build: {build}")
    after = collect(build, quick, log)
    return [(m, fb, fa, vb / va if va else float("nan")) for (m, fb, vb), (_, fa, va) in zip(before, after)]


def markdown(rows):
    if rows and len(rows[0]) == 4:
        lines = ["| measure | previous baton | this baton | previous / this |", "|---|---|---|---:|"]
        return "\n".join(lines + [f"| {m} | {fb} | {fa} | {r:.2f}x |" for m, fb, fa, r in rows])
    return "\n".join(["| measure | figure |", "|---|---|"] + [f"| {m} | {f} |" for m, f, _ in rows])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--baseline", metavar="BUILD", help="an earlier build to measure side by side, with ratios")
    ap.add_argument("--quick", action="store_true", help="shorter idle window and fewer rounds")
    args = ap.parse_args()
    rows = compared(args.build, args.baseline, args.quick) if args.baseline else collect(args.build, args.quick)
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
