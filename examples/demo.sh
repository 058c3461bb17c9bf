#!/usr/bin/env bash
# The demo: batond supervising a Python HTTP server through an upgrade, a failed upgrade,
# and a crash right after an upgrade that batond rolls back on its own, while a client
# keeps sending requests. Run from the project root after building (./run demo does both).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/release}
export BATON_SOCKET=/tmp/baton-demo/control.sock
rm -rf /tmp/baton-demo && mkdir -p /tmp/baton-demo
PORT=8080
if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
  echo "port $PORT is in use; stop whatever listens there first" >&2
  exit 1
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

"$BIN/supervisor/batond" -c examples/python-http/baton.toml 2>/tmp/baton-demo/batond.log &
BATOND=$!
LOAD=
cleanup() {
  [[ -n $LOAD ]] && kill "$LOAD" 2>/dev/null || true
  kill -TERM "$BATOND" 2>/dev/null && wait "$BATOND" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 100); do [[ -S $BATON_SOCKET ]] && break; sleep 0.1; done
until "$BIN/ctl/batonctl" status hello 2>/dev/null | grep -q running; do sleep 0.1; done

step "batond is serving v1"
"$BIN/ctl/batonctl" status
curl -s http://127.0.0.1:$PORT/

step "a client sends requests throughout (fresh connection each time)"
python3 - "$PORT" >/tmp/baton-demo/load.txt 2>&1 <<'PY' &
import sys, urllib.request, time, collections
port = sys.argv[1]; ok = 0; errors = 0; versions = collections.Counter()
deadline = time.time() + 600
while time.time() < deadline:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        versions[body.split()[0].split("=")[1]] += 1; ok += 1
    except Exception as e:
        errors += 1; print("error:", e, flush=True)
    print(f"ok={ok} errors={errors} versions={dict(versions)}", flush=True)
PY
LOAD=$!

step "upgrade to v2: v2 starts, proves ready (READY=1), then v1 drains"
"$BIN/ctl/batonctl" upgrade hello --version v2
curl -s http://127.0.0.1:$PORT/

step "upgrade to v3, which cannot start: v2 keeps serving"
"$BIN/ctl/batonctl" upgrade hello --version v3 -- python3 examples/python-http/server.py v3 --fail || echo "(batonctl exited $?)"
curl -s http://127.0.0.1:$PORT/

step "upgrade to v4, which crashes 2s after promotion: batond rolls back to v2 by itself"
"$BIN/ctl/batonctl" upgrade hello --version v4 -- python3 examples/python-http/server.py v4 --crash-after 2
for _ in $(seq 200); do
  "$BIN/ctl/batonctl" status hello | grep -q "automatic rollback to v2: promoted" && break
  sleep 0.1
done
"$BIN/ctl/batonctl" status hello
curl -s http://127.0.0.1:$PORT/

step "manual rollback to v1"
"$BIN/ctl/batonctl" rollback hello --to v1
curl -s http://127.0.0.1:$PORT/

step "history"
"$BIN/ctl/batonctl" history hello

kill "$LOAD"; wait "$LOAD" 2>/dev/null || true; LOAD=
step "the client's tally across all of the above"
tail -n 1 /tmp/baton-demo/load.txt
grep -q "errors=0 " <(tail -n 1 /tmp/baton-demo/load.txt) && echo "no request failed"
echo "(batond's log: /tmp/baton-demo/batond.log)"
