#!/usr/bin/env python3
"""Failed requests across N upgrades under load: baton vs the tools users would otherwise use.

    python3 bench/compare.py [--build build/release] [--upgrades 100]

The same worker (examples/python-http/server.py) serves in every case, under the same load
(bench/loadgen: 3 clients opening a fresh connection per request, 3 keep-alive clients):
- baton: the server takes its socket from batond (LISTEN_FDS); `batonctl upgrade`.
- supervisord (Debian `supervisor`): the server binds the port itself; `supervisorctl restart`.
- nginx binary upgrade (USR2, WINCH, QUIT), against nginx under baton, where the server is nginx.
Prints a table. Needs: supervisor, nginx (./run installs nginx; install supervisor first).
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
SERVER = os.path.join(ROOT, "examples/python-http/server.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=20):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Load:
    def __init__(self, build, port):
        self.proc = subprocess.Popen([os.path.join(build, "bench/loadgen"), "--port", str(port), "--fresh", "3",
                                      "--keepalive", "3"], stdout=subprocess.PIPE, text=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return out.strip()


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def bench_baton(build, n, tmp, command, ready, stop_signal):
    port = free_port()
    sock = os.path.join(tmp, "baton.sock")
    with open(os.path.join(tmp, "baton.toml"), "w") as f:
        f.write(f"""[daemon]
control_socket = "{sock}"
state_dir = "{tmp}/baton-state"
log_level = "warn"
[service.web]
command = {command}
cwd = "{ROOT}/examples"
version = "v1"
bake_time = "0s"
env = {{ BATON_RUN_DIR = "{tmp}/run" }}
[service.web.listen]
http = "tcp://127.0.0.1:{port}"
[service.web.ready]
{ready}
timeout = "20s"
[service.web.stop]
signal = "{stop_signal}"
timeout = "30s"
""")
    daemon = subprocess.Popen([os.path.join(build, "supervisor/batond"), "-c", os.path.join(tmp, "baton.toml")],
                              stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(1)
        with Load(build, port) as load:
            t0 = time.time()
            for i in range(n):
                run([os.path.join(build, "ctl/batonctl"), "-s", sock, "upgrade", "web", "--version", f"v{i % 2 + 2}"])
            took = time.time() - t0
            return load.finish(), took
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def bench_supervisord(build, n, tmp):
    port = free_port()
    conf = os.path.join(tmp, "supervisord.conf")
    with open(conf, "w") as f:
        f.write(f"""[unix_http_server]
file={tmp}/supervisor.sock
[supervisord]
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
childlogdir={tmp}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{tmp}/supervisor.sock
[program:web]
command={PY} {SERVER} v1 --bind {port}
stopsignal=TERM
stopwaitsecs=30
""")
    daemon = subprocess.Popen(["supervisord", "-n", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(1)
        with Load(build, port) as load:
            t0 = time.time()
            for _ in range(n):
                run(["supervisorctl", "-c", conf, "restart", "web"])
            took = time.time() - t0
            return load.finish(), took
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def bench_nginx_binary_upgrade(build, n, tmp):
    port = free_port()
    run_dir = os.path.join(tmp, "nginx-native")
    os.makedirs(run_dir)
    with open(os.path.join(ROOT, "examples/nginx/nginx.conf.in")) as f:
        conf = f.read()
    conf = (conf.replace("@RUN@", run_dir).replace("@PORT@", str(port)).replace("@PROBE_PORT@", str(free_port()))
            .replace("@VERSION@", "v1").replace("daemon off;", "daemon on;"))
    with open(os.path.join(run_dir, "nginx.conf"), "w") as f:
        f.write(conf)
    pidfile = os.path.join(run_dir, "nginx.pid")
    run(["/usr/sbin/nginx", "-p", run_dir, "-c", os.path.join(run_dir, "nginx.conf")])
    try:
        wait_port(port)
        time.sleep(1)
        with Load(build, port) as load:
          t0 = time.time()
          for _ in range(n):
            old = int(open(pidfile).read())
            os.kill(old, signal.SIGUSR2)  # start a new master with the same sockets
            deadline = time.time() + 10
            while not os.path.exists(pidfile + ".oldbin") and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)  # the new workers start (nginx gives no readiness signal)
            try:
                os.kill(old, signal.SIGWINCH)  # old workers stop gracefully
                os.kill(old, signal.SIGQUIT)  # old master exits
            except ProcessLookupError:
                print(f"nginx: old master {old} was already gone", file=sys.stderr)
            while os.path.exists(pidfile + ".oldbin") and time.time() < deadline + 20:
                time.sleep(0.01)
          took = time.time() - t0
          return load.finish(), took
    finally:
        try:
            os.kill(int(open(pidfile).read()), signal.SIGQUIT)
        except (OSError, ValueError):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build/release"))
    ap.add_argument("--upgrades", type=int, default=100)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="baton-compare-") as tmp:
        for name, fn in [
            ("baton (python server)", lambda d: bench_baton(args.build, args.upgrades, d,
                                                            f'["{PY}", "{SERVER}", "{{version}}"]', "notify = true",
                                                            "TERM")),
            ("supervisord restart (python server)", lambda d: bench_supervisord(args.build, args.upgrades, d)),
            ("baton (nginx)", lambda d: bench_baton(args.build, args.upgrades, d,
                                                    '["./nginx/run.sh", "{version}", "{port:http}", "{probe_port}"]',
                                                    'http = "http://127.0.0.1:{probe_port}/"', "QUIT")),
            ("nginx binary upgrade USR2/WINCH/QUIT", lambda d: bench_nginx_binary_upgrade(args.build, args.upgrades, d)),
        ]:
            if name.startswith("supervisord") and not shutil.which("supervisord"):
                rows.append((name, "skipped: supervisord not installed", 0))
                continue
            sub = os.path.join(tmp, str(len(rows)))
            os.makedirs(sub)
            summary, took = fn(sub)
            rows.append((name, summary, took))
            print(f"{name}: {summary} ({took:.1f} s)", flush=True)
    print()
    print(f"| tool ({args.upgrades} upgrades or restarts under load) | result | time |")
    print("|---|---|---:|")
    for name, summary, took in rows:
        print(f"| {name} | {summary} | {took:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
