#!/usr/bin/env python3
"""The benchmark harness: runs bench/compare.py, bench/scale.py, bench/proxy.py, bench/steering.py and (as root)
bench/tunnel.py, prints their tables and
writes them, with a description of the machine and the command, into docs/BENCHMARKS.md
(between the harness markers, replacing the previous run).

    ./run bench            # installs the peers (supervisor, haproxy, nginx), builds, runs this
    python3 bench/report.py [--build build/release] [--upgrades 100] [--quick] [--write docs/BENCHMARKS.md]
"""
import argparse
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
import proxy  # noqa: E402
import scale  # noqa: E402
import steering  # noqa: E402
import tunnel  # noqa: E402

BEGIN = "<!-- harness results: written by bench/report.py -->"
END = "<!-- end of harness results -->"


def version_of(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not installed"


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 2**20
    try:
        debian = open("/etc/debian_version").read().strip()
    except OSError:
        debian = "?"
    return [
        f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}, Debian {debian}",
        f"peers: {version_of(['nginx', '-v'])}; {version_of(['haproxy', '-v'])}; "
        f"supervisord {version_of(['supervisord', '--version'])}; {version_of(['/usr/bin/python3', '--version'])} "
        "(the Python servers)",
        "the load generator, batond and the workers share the same cores",
    ]


def splice(path, section):
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + BEGIN + "\n" + section + END + tail
    else:
        text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + section + END + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(compare.ROOT, "build/release"))
    ap.add_argument("--upgrades", type=int, default=100)
    ap.add_argument("--baseline", metavar="BUILD", help="an earlier build: batond's own costs beside it, with ratios")
    ap.add_argument("--baseline-name", default="", help="how the report names the baseline (a git revision)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and a shorter idle window")
    ap.add_argument("--write", metavar="FILE", help="splice the results into this Markdown file")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d")
    print("== failed requests across upgrades", flush=True)
    compared = compare.collect(args.build, args.upgrades, log=lambda s: print(s, flush=True))
    print("== batond's own costs", flush=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    costs = (scale.compared(args.build, args.baseline, args.quick, log) if args.baseline
             else scale.collect(args.build, args.quick, log))
    print("== proxy mode throughput and latency", flush=True)
    proxied = proxy.collect(args.build, 3 if args.quick else 10, log=lambda s: print(s, flush=True))
    print("== listener modes side by side: kernel steering, shared socket, proxy", flush=True)
    steered = steering.collect(args.build, 3 if args.quick else 5, 3, log=lambda s: print(s, flush=True))
    tunnelled = None
    if os.geteuid() == 0:  # sshd, the edge, runs as root
        print("== an SSH tunnel: batond's against OpenSSH's ssh -R, through one sshd edge", flush=True)
        tunnelled = tunnel.collect(args.build, 2 if args.quick else 5, 1 if args.quick else 3, log)
    else:
        print("the tunnel comparison is not run: its sshd edge needs root", file=sys.stderr)
    defaults = args.upgrades == 100 and not args.quick
    command = ("./run bench" + (f" {args.baseline_name}" if args.baseline_name else "")) if defaults else "python3 bench/report.py " + " ".join(sys.argv[1:])
    section = "\n".join([
        "## Harness results",
        "",
        f"Measured {started} with `{command}`.",
        "",
        *[f"- {line}" for line in machine()],
        "",
        "### Failed requests across upgrades under load",
        "",
        compare.markdown(compared, args.upgrades),
        "",
        "### batond's own costs",
        "",
        *([f"Beside the build of `{args.baseline_name or args.baseline}`, measured in the same run.", ""]
          if args.baseline else []),
        scale.markdown(costs),
        "",
        "### Proxy mode: throughput and latency (one nginx worker as the backend)",
        "",
        proxy.markdown(proxied),
        "",
        "### Listener modes: the same nginx worker behind kernel steering, a shared socket and the proxy",
        "",
        steering.markdown(steered),
        "",
        *(["### An SSH tunnel through a loopback sshd edge: batond's `[tunnel]` and OpenSSH's `ssh -N -R`", "",
           tunnel.markdown(tunnelled), ""] if tunnelled else []),
    ])
    print()
    print(section)
    if args.write:
        splice(args.write, section)
        print(f"written to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
