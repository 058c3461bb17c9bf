#!/usr/bin/env python3
"""Failed requests across N upgrades under load: baton vs the tools users would otherwise use.

    python3 bench/compare.py [--build build/release] [--upgrades 100]

The same worker (examples/python-http/server.py) serves in every case, under the same load
(bench/loadgen: 3 clients opening a fresh connection per request, 3 keep-alive clients):
- baton: the server takes its socket from batond (LISTEN_FDS); `batonctl upgrade`.
- supervisord (Debian `supervisor`): the server binds the port itself; `supervisorctl restart`.
- HAProxy master-worker reload (-W, `expose-fd listeners`): HAProxy in front of two copies of the
  server (v1 and v2, each binding its own port); every upgrade rewrites the backend to the other
  copy and reloads with SIGUSR2, waiting on the master CLI until the new worker runs.
- nginx binary upgrade (USR2, WINCH, QUIT), against nginx under baton, where the server is nginx.
Prints a table. Needs: supervisor, haproxy, nginx (`./run bench` installs them).
"""
import argparse
import json
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
    """bench/loadgen against a port for the length of a `with` block; finish() returns its JSON report."""

    def __init__(self, build, port):
        self.proc = subprocess.Popen([os.path.join(build, "bench/loadgen"), "--port", str(port), "--fresh", "3",
                                      "--keepalive", "3", "--json"], stdout=subprocess.PIPE, text=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return json.loads(out)


def under_load(build, port, n, upgrade):
    """Load on `port` while `upgrade(i)` runs for i in 0..n-1; returns (loadgen report, seconds)."""
    time.sleep(1)  # let the server settle before the load starts
    with Load(build, port) as load:
        t0 = time.time()
        for i in range(n):
            upgrade(i)
        return load.finish(), time.time() - t0


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def bench_baton(build, n, tmp, command, ready, stop_signal, proxy=False):
    port = free_port()
    listen = f'{{ address = "tcp://127.0.0.1:{port}", mode = "proxy" }}' if proxy else f'"tcp://127.0.0.1:{port}"'
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
http = {listen}
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

        def upgrade(i):
            run([os.path.join(build, "ctl/batonctl"), "-s", sock, "upgrade", "web", "--version", f"v{i % 2 + 2}"])

        return under_load(build, port, n, upgrade)
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

        def upgrade(i):
            run(["supervisorctl", "-c", conf, "restart", "web"])

        return under_load(build, port, n, upgrade)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def master_cli(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)  # the master CLI answers, then closes
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out.decode()


def haproxy_reloads(master_sock):
    """(reload count, pids of current workers) from the master CLI's `show proc`."""
    text = master_cli(master_sock, "show proc")
    fields = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    master = next(f for f in fields if f[1] == "master")
    section, workers = None, []
    for line in text.splitlines():
        if line.startswith("# "):
            section = line[2:].strip()
        elif section == "workers" and line.strip():
            workers.append(int(line.split()[0]))
    return int(master[2]), workers


def bench_haproxy_reload(build, n, tmp):
    port = free_port()
    backends = {"v1": free_port(), "v2": free_port()}
    servers = [subprocess.Popen([PY, SERVER, v, "--bind", str(p)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for v, p in backends.items()]
    conf = os.path.join(tmp, "haproxy.cfg")
    master_sock = os.path.join(tmp, "master.sock")

    def write_conf(version):
        with open(conf, "w") as f:
            f.write(f"""global
  master-worker
  stats socket {tmp}/admin.sock mode 600 expose-fd listeners level admin
  hard-stop-after 60s
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend web
  bind 127.0.0.1:{port}
  default_backend app
backend app
  server {version} 127.0.0.1:{backends[version]}
""")

    write_conf("v1")
    daemon = subprocess.Popen(["haproxy", "-W", "-S", master_sock, "-f", conf], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for p in [port, *backends.values()]:
            wait_port(p)

        def upgrade(i):
            write_conf("v2" if i % 2 == 0 else "v1")
            reloads, workers = haproxy_reloads(master_sock)
            daemon.send_signal(signal.SIGUSR2)
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    now, current = haproxy_reloads(master_sock)
                except OSError:  # the master re-executes itself: its CLI is away for a moment
                    time.sleep(0.01)
                    continue
                if now > reloads and current and not set(current) & set(workers):
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError("haproxy did not finish a reload")

        return under_load(build, port, n, upgrade)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


def process_running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def nginx_workers_started(pidfile, old_master):
    """The new master (nginx.pid once it differs from the old one) has its 2 workers running."""
    try:
        new = int(open(pidfile).read())
        if new == old_master:
            return False
        with open(f"/proc/{new}/task/{new}/children") as f:
            return len(f.read().split()) >= 2
    except (OSError, ValueError):
        return False


def bench_nginx_binary_upgrade(build, n, tmp):
    port = free_port()
    run_dir = os.path.join(tmp, "nginx-native")
    os.makedirs(run_dir)
    with open(os.path.join(ROOT, "examples/nginx/nginx.conf.in")) as f:
        conf = f.read()
    template = (conf.replace("@RUN@", run_dir).replace("@PORT@", str(port)).replace("@PROBE_PORT@", str(free_port()))
                .replace("daemon off;", "daemon on;")
                .replace("error_log stderr notice;", f"error_log {run_dir}/error.log notice;"))

    def write_conf(version):  # the new binary reads the config afresh: the version shows the switch
        with open(os.path.join(run_dir, "nginx.conf"), "w") as f:
            f.write(template.replace("@VERSION@", version))

    write_conf("v1")
    pidfile = os.path.join(run_dir, "nginx.pid")
    run(["/usr/sbin/nginx", "-p", run_dir, "-c", os.path.join(run_dir, "nginx.conf")])
    try:
        wait_port(port)

        def upgrade(i):
            write_conf(f"v{i % 2 + 2}")
            old = int(open(pidfile).read())
            os.kill(old, signal.SIGUSR2)  # a new master starts with the same sockets
            deadline = time.time() + 20
            while not nginx_workers_started(pidfile, old):
                if time.time() > deadline:
                    raise RuntimeError(f"nginx: no new master after USR2; see {run_dir}/error.log")
                time.sleep(0.01)
            try:
                os.kill(old, signal.SIGWINCH)  # old workers stop gracefully
                os.kill(old, signal.SIGQUIT)  # old master exits
            except ProcessLookupError:
                print(f"nginx: old master {old} was already gone", file=sys.stderr)
            # The new master takes the next USR2 only once its parent, the old master, has exited.
            while process_running(old) and time.time() < deadline + 20:
                time.sleep(0.01)

        return under_load(build, port, n, upgrade)
    finally:
        try:
            os.kill(int(open(pidfile).read()), signal.SIGQUIT)
        except (OSError, ValueError):
            pass


BENCHES = [
    ("baton, upgrade (Python server, LISTEN_FDS)",
     lambda build, n, d: bench_baton(build, n, d, f'["{PY}", "{SERVER}", "{{version}}"]', "notify = true", "TERM")),
    ("baton, upgrade in proxy mode (Python server binding its own port)",
     lambda build, n, d: bench_baton(build, n, d, f'["{PY}", "{SERVER}", "{{version}}", "--bind", "{{port:http}}"]',
                                     'http = "http://127.0.0.1:{port:http}/"', "TERM", proxy=True)),
    ("supervisord, `supervisorctl restart` (Python server)", bench_supervisord),
    ("HAProxy 2.6 `-W` reload, blue/green backends (Python server)", bench_haproxy_reload),
    ("baton, upgrade (nginx, NGINX=)",
     lambda build, n, d: bench_baton(build, n, d, '["./nginx/run.sh", "{version}", "{port:http}", "{probe_port}"]',
                                     'http = "http://127.0.0.1:{probe_port}/"', "QUIT")),
    ("nginx's own binary upgrade USR2/WINCH/QUIT", bench_nginx_binary_upgrade),
]
NEEDS = {bench_supervisord: "supervisord", bench_haproxy_reload: "haproxy"}


def collect(build, upgrades, log=print):
    """Runs every comparison; returns rows of (tool, loadgen report or None, seconds, note)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="baton-compare-") as tmp:
        for name, fn in BENCHES:
            tool = NEEDS.get(fn)
            if tool and not shutil.which(tool):
                rows.append((name, None, 0, f"skipped: {tool} is not installed"))
                log(f"{name}: skipped")
                continue
            sub = os.path.join(tmp, str(len(rows)))
            os.makedirs(sub)
            report, took = fn(build, upgrades, sub)
            rows.append((name, report, took, ""))
            log(f"{name}: {json.dumps(report)} ({took:.1f} s)")
    return rows


def markdown(rows, upgrades):
    out = [f"| {upgrades} upgrades or restarts under load | requests ok | failed | failures by kind "
           "| stale keep-alive retries | p99 | max | wall time |",
           "|---|---:|---:|---|---:|---:|---:|---:|"]
    for name, r, took, note in rows:
        if r is None:
            out.append(f"| {name} | {note} | | | | | | |")
            continue
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "-"
        out.append(f"| {name} | {r['ok']} | {r['failed']} | {kinds} | {r['stale_retries']} | {r['p99_ms']:.1f} ms "
                   f"| {r['max_ms']:.0f} ms | {took:.1f} s |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build/release"))
    ap.add_argument("--upgrades", type=int, default=100)
    args = ap.parse_args()
    rows = collect(args.build, args.upgrades)
    print()
    print(markdown(rows, args.upgrades))
    return 0


if __name__ == "__main__":
    sys.exit(main())
