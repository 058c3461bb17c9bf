#!/usr/bin/env python3
"""Soak: one batond for about 15 minutes with everything at once, to find slow leaks.

    python3 bench/soak.py [--build build/release] [--minutes 15] [--upgrades 2000]
                          [--self-upgrades 100] [--json FILE]

On one batond, together:
- upgrades, alternating between two services: "web" (4 test workers on an inherited
  listener, the default mode) and "api" (2 python3 http.server workers in proxy mode);
- self-upgrades of batond, spread over the run (each waits for the service to be quiet,
  as batond refuses one while anything is in motion);
- a live web worker killed with SIGKILL every 2 to 5 seconds;
- now and then a live web worker stopped with SIGSTOP, which the next upgrade drains:
  it is killed when its stop timeout runs out;
- 50 control clients: 40 polling status, 10 following the event stream;
- HTTP load on both services with fresh and keep-alive connections throughout.

Every second it samples batond's resident memory and open descriptors. It prints the
slope of each (least squares after the first minute, when the log rings have filled),
the failed requests, with those in flight on a worker the soak killed counted apart, and
the handovers promoted and failed. Uses only the standard library and the project's
binaries; all traffic stays on 127.0.0.1.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def api(sock_path, method, path, body=None, timeout=60):
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.settimeout(timeout)
    try:
        conn.sock.connect(sock_path)
        conn.request(method, path, body=json.dumps(body) if body is not None else None)
        res = conn.getresponse()
        return res.status, json.loads(res.read() or b"null")
    finally:
        conn.close()


def free_port():
    """A loopback port below the kernel's ephemeral range and batond's port_range."""
    start = 10000 + os.getpid() % 9000
    for port in range(start, start + 1000):
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port")


def slope_per_hour(samples):
    """Theil-Sen slope of (t, value) pairs (the median of the slopes between every two of
    at most 300 evenly spread samples), in value units per hour. Robust to the few samples
    taken while batond re-executes itself (a self-upgrade), when its resident set is
    briefly a fraction of what it is, which tilt a least-squares line over a short window."""
    step = max(1, len(samples) // 300)
    pts = samples[::step]
    slopes = sorted((v2 - v1) / (t2 - t1) for i, (t1, v1) in enumerate(pts) for t2, v2 in pts[i + 1:] if t2 > t1)
    if not slopes:
        return 0.0
    mid = len(slopes) // 2
    median = slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2
    return median * 3600


class Soak:
    def __init__(self, args):
        self.args = args
        self.build = args.build
        self.tmp = tempfile.mkdtemp(prefix="baton-soak-")
        self.sock = os.path.join(self.tmp, "ctl.sock")
        self.stop = threading.Event()
        self.quiet = threading.Lock()  # held by upgrades and self-upgrades: one at a time
        self.lock = threading.Lock()
        self.deaths = []  # (unix time, pid): workers this soak killed, or had killed
        self.handovers = {"promoted": 0, "failed": 0, "reasons": {}}
        self.self_upgrades = {"done": 0, "refused_busy": 0, "failed": 0}
        self.control = {"status_ok": 0, "status_other": 0, "events": 0, "event_streams": 0}
        self.samples = []  # (t since start, rss bytes, open fds)
        self.kills = self.stops = 0
        self.web_port, self.api_port = free_port(), None
        self.write_config()

    def write_config(self):
        worker = os.path.abspath(os.path.join(self.build, "tests/test_worker"))
        www = os.path.join(self.tmp, "www")
        self.versions = [f"v{i}" for i in range(1, 5)]
        for v in self.versions:
            os.makedirs(os.path.join(www, v))
            with open(os.path.join(www, v, "index.html"), "w") as f:
                f.write(f"version={v} \n")
        self.api_port = free_port() + 1
        text = f"""[daemon]
control_socket = "{self.sock}"
state_dir = "{self.tmp}/state"
log_level = "warn"
control_timeout = "5s"

[service.web]
command = ["{worker}", "--version", "{{version}}", "--notify"]
version = "v1"
replicas = 4
bake_time = "0s"
[service.web.listen]
http = "tcp://127.0.0.1:{self.web_port}"
[service.web.ready]
notify = true
timeout = "10s"
[service.web.stop]
timeout = "2s"
[service.web.restart]
backoff = "100ms"

[service.api]
command = ["/usr/bin/python3", "-m", "http.server", "{{port:http}}", "--bind", "127.0.0.1", "--directory", "{www}/{{version}}"]
version = "v1"
replicas = 2
bake_time = "0s"
[service.api.listen]
http = {{ address = "tcp://127.0.0.1:{self.api_port}", mode = "proxy" }}
[service.api.ready]
tcp = "127.0.0.1:{{port:http}}"
timeout = "10s"
interval = "20ms"
[service.api.stop]
timeout = "5s"
"""
        self.config = os.path.join(self.tmp, "baton.toml")
        with open(self.config, "w") as f:
            f.write(text)

    # --- batond -----------------------------------------------------------------------

    def start(self):
        self.log = open(os.path.join(self.tmp, "batond.log"), "w")
        self.proc = subprocess.Popen([os.path.join(self.build, "supervisor/batond"), "-c", self.config],
                                     stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                status, body = api(self.sock, "GET", "/v1/status")
                if status == 200 and all(s["state"] == "running" for s in body["services"]):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("batond did not start; see " + self.log.name)

    def live_workers(self, service):
        status, body = api(self.sock, "GET", f"/v1/services/{service}")
        if status != 200:
            return []
        return [w["pid"] for g in body["generations"] if g["state"] == "live" for w in g["workers"]
                if w.get("pid") and w.get("state") == "ready"]

    # --- the activities, one thread each ------------------------------------------------

    def upgrades(self):
        total = self.args.upgrades
        start = time.time()
        for i in range(total):
            if self.stop.is_set():
                break
            # Keep pace with the run's length: i upgrades by i/total of it.
            due = start + self.args.minutes * 60 * i / total
            while time.time() < due and not self.stop.is_set():
                time.sleep(0.01)
            service = "api" if i % 5 == 4 else "web"
            version = self.versions[(i // 2) % len(self.versions)]
            with self.quiet:
                try:
                    status, body = api(self.sock, "POST", f"/v1/services/{service}/upgrade", {"version": version})
                except (OSError, ValueError, http.client.HTTPException) as e:
                    status, body = 0, {"error": {"message": str(e)}}
            with self.lock:
                if status == 200:
                    self.handovers["promoted"] += 1
                else:
                    self.handovers["failed"] += 1
                    reason = (body or {}).get("error", {}).get("message", str(status))[:120]
                    self.handovers["reasons"][reason] = self.handovers["reasons"].get(reason, 0) + 1

    def self_upgrade_loop(self):
        binary = os.path.abspath(os.path.join(self.build, "supervisor/batond"))
        every = self.args.minutes * 60 / self.args.self_upgrades
        next_at = time.time() + every / 2
        while not self.stop.is_set() and self.self_upgrades["done"] < self.args.self_upgrades:
            if time.time() < next_at:
                time.sleep(0.05)
                continue
            with self.quiet:  # no upgrade starts meanwhile; restarts of killed workers may still run
                deadline = time.time() + 30
                attempt = None
                while time.time() < deadline:
                    try:
                        status, body = api(self.sock, "POST", "/v1/self-upgrade", {"binary": binary})
                    except (OSError, ValueError, http.client.HTTPException):
                        status, body = 0, None
                    if status == 202:
                        attempt = body.get("attempt")
                        break
                    self.self_upgrades["refused_busy"] += 1  # 409: a worker is starting or stopping
                    time.sleep(0.02)
                last = None
                while attempt is not None and time.time() < deadline:
                    try:  # the program is being replaced; its successor reports the attempt
                        status, body = api(self.sock, "GET", "/v1/status", timeout=5)
                        last = body["daemon"]["self_upgrade"].get("last") if status == 200 else None
                        if last and last.get("attempt") == attempt:
                            break
                    except (OSError, ValueError, KeyError, http.client.HTTPException):
                        pass
                    time.sleep(0.01)
                if last and last.get("attempt") == attempt and last.get("ok"):
                    self.self_upgrades["done"] += 1
                else:
                    self.self_upgrades["failed"] += 1
            next_at += every

    def signal_random_worker(self, rng, sig):
        """Sends `sig` to a ready worker of web's live generation; returns its pid, or None."""
        try:
            pids = self.live_workers("web")
        except (OSError, ValueError, http.client.HTTPException):
            return None
        if not pids:
            return None
        pid = rng.choice(pids)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return None
        return pid

    def killer(self):
        rng = random.Random(1)
        while not self.stop.wait(rng.uniform(2, 5)):
            pid = self.signal_random_worker(rng, signal.SIGKILL)
            if pid:
                with self.lock:
                    self.deaths.append((time.time(), pid))
                    self.kills += 1

    def stopper(self):
        rng = random.Random(2)
        while not self.stop.wait(rng.uniform(30, 60)):
            pid = self.signal_random_worker(rng, signal.SIGSTOP)
            if not pid:
                continue
            self.stops += 1
            # batond kills it once a handover drains it and its stop timeout runs out.
            while not self.stop.is_set():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break
                except OSError:
                    break  # reaped
                time.sleep(0.005)
            with self.lock:
                self.deaths.append((time.time(), pid))

    def status_poller(self, n):
        rng = random.Random(100 + n)
        while not self.stop.wait(rng.uniform(0.2, 1.0)):
            try:
                status, _ = api(self.sock, "GET", "/v1/status" if n % 2 else "/v1/services/web", timeout=10)
            except (OSError, ValueError, http.client.HTTPException):
                status = 0
            with self.lock:
                self.control["status_ok" if status == 200 else "status_other"] += 1

    def event_follower(self):
        while not self.stop.is_set():
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(1)
                s.connect(self.sock)
                s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
                with self.lock:
                    self.control["event_streams"] += 1
                while not self.stop.is_set():
                    try:
                        data = s.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        break  # a self-upgrade ends every stream: follow again
                    with self.lock:
                        self.control["events"] += data.count(b'"type"')
                s.close()
            except OSError:
                time.sleep(0.1)

    def sampler(self):
        t0 = time.time()
        pid = self.proc.pid
        while not self.stop.wait(1.0):
            try:
                # VmRSS also counts the program's and libraries' pages, which come and go with
                # each re-exec; RssAnon is the memory batond allocated, where a leak would show.
                with open(f"/proc/{pid}/status") as f:
                    kb = {k: int(v.split()[0]) * 1024 for k, v in (l.split(":", 1) for l in f) if k in ("VmRSS", "RssAnon")}
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except (OSError, ValueError):
                continue
            if "VmRSS" in kb and "RssAnon" in kb:
                self.samples.append((time.time() - t0, kb["VmRSS"], fds, kb["RssAnon"]))

    # --- the run --------------------------------------------------------------------------

    def run(self):
        self.start()
        loadgen = os.path.join(self.build, "bench/loadgen")
        seconds = str(self.args.minutes * 60)
        loads = {name: subprocess.Popen([loadgen, "--port", str(port), "--fresh", "3", "--keepalive", "3",
                                         "--seconds", seconds, "--json"], stdout=subprocess.PIPE, text=True)
                 for name, port in (("web", self.web_port), ("api", self.api_port))}
        threads = [threading.Thread(target=f) for f in (self.upgrades, self.self_upgrade_loop, self.killer,
                                                           self.stopper, self.sampler)]
        threads += [threading.Thread(target=self.status_poller, args=(n,)) for n in range(40)]
        threads += [threading.Thread(target=self.event_follower) for _ in range(10)]
        for t in threads:
            t.daemon = True
            t.start()
        reports = {name: json.loads(p.communicate()[0]) for name, p in loads.items()}
        self.stop.set()
        for t in threads:
            t.join(timeout=60)
        alive = self.proc.poll() is None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        return self.report(reports, alive)

    def report(self, reports, alive):
        settled = [s for s in self.samples if s[0] >= 60]
        # The history fills up (500 entries per service) over the first half: the second
        # half alone shows growth that has no such end.
        second_half = [s for s in self.samples if s[0] >= self.args.minutes * 30]
        fd_slope = slope_per_hour([(t, f) for t, _, f, _ in settled])

        def memory(index):  # the figures of one memory column of the samples
            return {"first": self.samples[0][index] / 2**20 if self.samples else None,
                    "after_1_min": settled[0][index] / 2**20 if settled else None,
                    "last": self.samples[-1][index] / 2**20 if self.samples else None,
                    "slope_mib_per_hour": round(slope_per_hour([(s[0], s[index] / 2**20) for s in settled]), 3),
                    "second_half_slope_mib_per_hour":
                        round(slope_per_hour([(s[0], s[index] / 2**20) for s in second_half]), 3)}
        in_flight_on_killed = other = 0
        for report in reports.values():
            for started, ended in report["failure_times"]:
                if any(started - 0.05 <= t <= ended + 0.05 for t, _ in self.deaths):
                    in_flight_on_killed += 1
                else:
                    other += 1
        out = {
            "minutes": self.args.minutes,
            "batond_alive_at_end": alive,
            "rss_mib": memory(1),
            "anon_mib": memory(3),
            "open_fds": {"first": self.samples[0][2] if self.samples else None,
                         "after_1_min": settled[0][2] if settled else None,
                         "last": self.samples[-1][2] if self.samples else None,
                         "min": min(s[2] for s in settled) if settled else None,
                         "max": max(s[2] for s in settled) if settled else None,
                         "slope_per_hour": round(fd_slope, 3),
                         "second_half_slope_per_hour": round(slope_per_hour([(s[0], s[2]) for s in second_half]), 3)},
            "requests": {name: {"ok": r["ok"], "failed": r["failed"], "errors": r["errors"]}
                         for name, r in reports.items()},
            "failed_in_flight_on_killed_workers": in_flight_on_killed,
            "failed_otherwise": other,
            "handovers": self.handovers,
            "self_upgrades": self.self_upgrades,
            "workers_killed": self.kills,
            "workers_stopped": self.stops,
            "control": self.control,
            "log": self.log.name,
        }
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build", "release"))
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--upgrades", type=int, default=2000)
    ap.add_argument("--self-upgrades", type=int, default=100)
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory (batond's log) even when it passed")
    args = ap.parse_args()
    if not (0 < args.minutes <= 24 * 60 and 0 < args.upgrades <= 10**6 and 0 < args.self_upgrades <= 10**4):
        ap.error("minutes, upgrades and self-upgrades must be positive and reasonable")
    soak = Soak(args)
    out = soak.run()
    ok = (out["batond_alive_at_end"] and out["failed_otherwise"] == 0 and out["handovers"]["failed"] == 0)
    if ok and not args.keep:
        shutil.rmtree(soak.tmp, ignore_errors=True)
        out["log"] = None
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
