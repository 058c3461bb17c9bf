#!/usr/bin/env bash
# A fleet of three hosts behind HAProxy, upgraded by Ansible through the collection while
# load runs through HAProxy (tests/fleet_lib.sh builds the fleet). Each host runs its own
# batond with the health endpoint, which HAProxy checks (/readyz); HAProxy neither retries
# nor redispatches, so every request a host fails would reach the client. The plays: a
# rolling upgrade to v2, the same again (changed=0), a release that cannot start (it fails
# on the first host and the play stops there, the others untouched), a rollback to v1.
# Across all of it: 0 failed requests, and no host ever marked down.
#   usage: fleet_test.sh BATOND BATONCTL TEST_WORKER LOADGEN
set -euo pipefail
batond=$1
batonctl=$2
worker=$3
fleet_loadgen=$4
source "$(dirname "$0")/fleet_lib.sh"
fleet_require
fleet_hosts_up
for h in "${fleet_hosts[@]}"; do
  d=$fleet_work/h$h
  cat >"$d/baton.toml" <<EOF
[daemon]
control_socket = "$d/ctl.sock"
state_dir = "$d/state"
health = "tcp://$fleet_net.1$h:9181"
[service.web]
command = ["$worker", "--version", "{version}", "--notify"]
version = "v1"
replicas = 2
bake_time = "0s"
[service.web.listen]
http = "tcp://$fleet_net.1$h:8080"
[service.web.ready]
notify = true
timeout = "5s"
EOF
  fleet_on "$h" "$batond" -c "$d/baton.toml"
done

live() {  # live HOST: the version live and promoted on that host, or -
  "$batonctl" -s "$fleet_work/h$1/ctl.sock" --json status web 2>/dev/null | /usr/bin/python3 -c \
    'import json,sys; s=json.load(sys.stdin); print(s["version"] if s["state"] in ("running","baking") else "-")' 2>/dev/null ||
    echo -
}
all_live() { for h in "${fleet_hosts[@]}"; do [[ $(live "$h") == "$1" ]] || return 1; done; }
wait_until 20 all_live v1 || fail "batond did not start v1 on every host"
fleet_haproxy strict 9181
fleet_ansible 'baton_service=web baton_socket=$fleet_work/h$h/ctl.sock'

total_ok=0
play() {  # play NAME PLAYBOOK ARGS...: under load; 0 failed requests; returns the play's exit code
  local name=$1 rc=0
  fleet_play_under_load "$fleet_repo/examples/ansible/$2" "${@:3}" || rc=$?
  echo "$name: ansible-playbook exit $rc; through HAProxy: $load_ok ok, $load_failed failed"
  ((load_ok > 0)) || fail "$name: no request went through"
  ((load_failed == 0)) || fail "$name: $load_failed failed requests: $(cat "$fleet_work/load.json")"
  total_ok=$((total_ok + load_ok))
  return $rc
}

play "rolling upgrade to v2" rolling-upgrade.yml -e version=v2 || fail "the rolling upgrade to v2"
for h in "${fleet_hosts[@]}"; do fleet_recap "$h" | grep -q 'changed=1' || fail "upgrade: $(fleet_recap "$h")"; done
all_live v2 || fail "not every host is on v2"
fleet_served v1 v2 || fail "the load did not see the hosts go from v1 to v2"

play "the same again" rolling-upgrade.yml -e version=v2 || fail "the second run"
for h in "${fleet_hosts[@]}"; do fleet_recap "$h" | grep -q 'changed=0' || fail "second run: $(fleet_recap "$h")"; done

rc=0
play "a release that cannot start" rolling-upgrade.yml -e version=v3 -e '{"command": ["/bin/false"]}' || rc=$?
((rc != 0)) || fail "the bad release did not fail the play"
fleet_recap 1 | grep -q 'failed=1' || fail "the bad release did not fail on the first host: $(fleet_recap 1)"
grep -q 'v3 of web was not promoted' "$fleet_work/play.log" || fail "no reason from batond in the failure"
for h in 2 3; do
  fleet_recap "$h" | grep -q 'not in the recap' || fail "the play went on after the first host: $(fleet_recap "$h")"
  if "$batonctl" -s "$fleet_work/h$h/ctl.sock" history web | grep -q v3; then fail "h$h was touched by the bad release"; fi
done
all_live v2 || fail "not every host serves v2 after the bad release"

play "rollback to v1" rollback.yml -e to=v1 || fail "the rollback"
for h in "${fleet_hosts[@]}"; do fleet_recap "$h" | grep -q 'changed=1' || fail "rollback: $(fleet_recap "$h")"; done
all_live v1 || fail "not every host is on v1 after the rollback"
fleet_served v2 v1 || fail "the load did not see the hosts go back from v2 to v1"

downs=$(fleet_downs)
((downs == 0)) || fail "HAProxy marked a host down $downs time(s)"
echo "fleet: 3 hosts, 4 plays, $total_ok requests through HAProxy, 0 failed, no host marked down"
