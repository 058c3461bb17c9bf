#!/usr/bin/env bash
# The fleet side by side: three hosts (tests/fleet_lib.sh) behind one HAProxy, each
# running the same Python server (examples/python-http/server.py, one process per host),
# upgraded v1 -> v2 host by host by Ansible while load runs through HAProxy:
#   - baton: batond on each host, the collection's rolling-upgrade.yml; HAProxy checks
#     batond's /readyz.
#   - supervisord: the server binds its port itself; the usual play writes the new version
#     and runs `supervisorctl restart`, one host at a time; HAProxy checks GET /.
# Each under two HAProxy policies: strict (no retry: what the hosts fail reaches the
# client) and forgiving (3 retries on a failed connect or an empty response, redispatched
# to another host). Prints a Markdown table; with --write, splices it into each FILE.
#   usage: bench/fleet.sh [BUILD] [--write FILE...]      (as root; ./run bench runs it)
set -euo pipefail
build=${1:-build/release}
shift || true
write=()
if [[ ${1:-} == --write ]]; then write=("${@:2}"); fi
build=$(cd "$build" && pwd)
fleet_loadgen=$build/bench/loadgen
source "$(dirname "$0")/../tests/fleet_lib.sh"
fleet_require supervisord supervisorctl
server=$fleet_repo/examples/python-http/server.py
fleet_hosts_up
fleet_ansible 'baton_service=web baton_socket=$fleet_work/h$h/ctl.sock supervisord_conf=$fleet_work/h$h/supervisord.conf version_file=$fleet_work/h$h/version'

host_pids=()
start_baton() {
  for h in "${fleet_hosts[@]}"; do
    local d=$fleet_work/h$h
    rm -rf "$d/state"
    cat >"$d/baton.toml" <<EOF
[daemon]
control_socket = "$d/ctl.sock"
state_dir = "$d/state"
health = "tcp://$fleet_net.1$h:9181"
log_level = "warn"
[service.web]
command = ["/usr/bin/python3", "$server", "{version}"]
version = "v1"
bake_time = "0s"
[service.web.listen]
http = "tcp://$fleet_net.1$h:8080"
[service.web.ready]
notify = true
timeout = "20s"
[service.web.stop]
timeout = "30s"
EOF
    fleet_on "$h" "$build/supervisor/batond" -c "$d/baton.toml"
    host_pids+=($!)
  done
}
start_supervisord() {
  for h in "${fleet_hosts[@]}"; do
    local d=$fleet_work/h$h
    echo v1 >"$d/version"
    cat >"$d/supervisord.conf" <<EOF
[unix_http_server]
file=$d/supervisor.sock
[supervisord]
logfile=$d/supervisord.log
pidfile=$d/supervisord.pid
childlogdir=$d
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$d/supervisor.sock
[program:web]
command=/bin/sh -c 'exec /usr/bin/python3 $server "\$(cat $d/version)" --bind $fleet_net.1$h:8080'
stopsignal=TERM
stopwaitsecs=30
EOF
    fleet_on "$h" supervisord -n -c "$d/supervisord.conf"
    host_pids+=($!)
  done
}
stop_hosts() {
  local pid
  for pid in "${host_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${host_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  host_pids=()
}
serving() {  # serving VERSION: every host answers with it
  local h
  for h in "${fleet_hosts[@]}"; do
    curl -fsS --max-time 2 "http://$fleet_net.1$h:8080/" 2>/dev/null | grep -q "version=$1 " || return 1
  done
}

declare -A result
for peer in baton supervisord; do
  for policy in strict forgiving; do
    "start_$peer"
    wait_until 30 serving v1 || fail "$peer: v1 does not answer on every host"
    if [[ $peer == baton ]]; then
      fleet_haproxy "$policy" 9181
      rc=0
      fleet_play_under_load "$fleet_repo/examples/ansible/rolling-upgrade.yml" -e version=v2 || rc=$?
    else
      fleet_haproxy "$policy" -
      rc=0
      fleet_play_under_load "$fleet_repo/bench/fleet-supervisord.yml" -e version=v2 || rc=$?
    fi
    ((rc == 0)) || fail "$peer: the play failed"
    serving v2 || fail "$peer: not every host serves v2 after the play"
    downs=$(fleet_downs)
    result[$peer.$policy]="$load_failed of $((load_ok + load_failed)) failed ($play_seconds s play, $downs host(s) marked down)"
    echo "$peer, HAProxy $policy: ${result[$peer.$policy]}" >&2
    fleet_haproxy_stop
    stop_hosts
  done
done

table=$(
  cat <<EOF
Three hosts (network namespaces, each with its own sshd) behind one HAProxy, each running
the same Python server, one process per host, upgraded v1 -> v2 host by host by
\`ansible-playbook\` over SSH, with load through HAProxy (2 clients opening a connection
per request, 2 keep-alive), all on one machine: $(nproc) cores, Linux $(uname -r),
$(haproxy -v | head -1 | cut -d' ' -f1-3), supervisord $(supervisord --version). Requests that
failed at the client, of all sent during the play:

| per-host step | HAProxy strict (no retry) | HAProxy forgiving (3 retries, redispatch) |
|---|---|---|
| baton: \`baton.baton.release\` (rolling-upgrade.yml), HAProxy checks \`/readyz\` | ${result[baton.strict]} | ${result[baton.forgiving]} |
| supervisord: write the version, \`supervisorctl restart\`, HAProxy checks \`GET /\` | ${result[supervisord.strict]} | ${result[supervisord.forgiving]} |
EOF
)
echo "$table"
for file in "${write[@]}"; do
  /usr/bin/python3 - "$file" "$table" "$(date +%Y-%m-%d)" <<'EOF'
import sys
path, table, day = sys.argv[1:4]
begin, end = "<!-- fleet results: written by bench/fleet.sh -->", "<!-- end of fleet results -->"
section = f"Measured {day} with `bench/fleet.sh` (run by `./run bench`).\n\n{table}\n"
text = open(path).read()
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + begin + "\n" + section + end + rest.split(end, 1)[1]
else:
    text = text.rstrip("\n") + "\n\n## The fleet: baton and supervisord behind HAProxy\n\n" + begin + "\n" + section + end + "\n"
open(path, "w").write(text)
EOF
  echo "written to $file" >&2
done
