#!/usr/bin/env bash
# The Ansible collection against a real batond on this host (connection=local), through
# the example playbooks: a rolling upgrade, the same again (changed=0), check mode, a
# release that fails (the play fails with batond's reason, the old release serves), and a
# rollback, twice.      usage: ansible_test.sh BATOND BATONCTL TEST_WORKER
set -euo pipefail
batond=$1
batonctl=$2
worker=$3
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
batond_pid=
cleanup() {
  if [[ -n $batond_pid ]]; then
    kill -TERM "$batond_pid" 2>/dev/null || true
    wait "$batond_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [[ -f $work/play.log ]] && tail -40 "$work/play.log" >&2
  exit 1
}
export ANSIBLE_COLLECTIONS_PATH=$repo/ansible ANSIBLE_LOCAL_TEMP=$work/tmp ANSIBLE_REMOTE_TEMP=$work/tmp
export ANSIBLE_NOCOLOR=1 ANSIBLE_HOST_KEY_CHECKING=0 ANSIBLE_RETRY_FILES_ENABLED=0 HOME=$work

cat >"$work/baton.toml" <<TOML
[daemon]
control_socket = "$work/ctl.sock"
state_dir = "$work/state"
[service.web]
command = ["$worker", "--version", "{version}", "--notify"]
version = "v1"
replicas = 2
bake_time = "0s"
[service.web.listen]
http = "tcp://127.0.0.1:0"
[service.web.ready]
notify = true
timeout = "5s"
TOML
"$batond" -c "$work/baton.toml" >"$work/batond.log" 2>&1 &
batond_pid=$!
live() { "$batonctl" -s "$work/ctl.sock" --json status web | /usr/bin/python3 -c \
  'import json,sys; s=json.load(sys.stdin); print(s["version"] if s["state"] in ("running","baking") else "-")'; }
for _ in $(seq 100); do [[ $(live 2>/dev/null) == v1 ]] && break; sleep 0.1; done
[[ $(live) == v1 ]] || { cat "$work/batond.log"; fail "batond did not start v1"; }

printf '[web]\nlocalhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3 baton_socket=%s baton_service=web\n' \
  "$work/ctl.sock" >"$work/inventory.ini"
play() {  # play PLAYBOOK ARGS...: exit code of ansible-playbook; output in play.log
  local rc=0
  ansible-playbook -i "$work/inventory.ini" "$repo/examples/ansible/$1" "${@:2}" >"$work/play.log" 2>&1 || rc=$?
  return $rc
}
recap() { grep -E '^localhost +:' "$work/play.log"; }

play rolling-upgrade.yml -e version=v2 || fail "the rolling upgrade to v2"
recap | grep -q 'changed=1' || fail "upgrade: $(recap)"
[[ $(live) == v2 ]] || fail "v2 is not live after the upgrade"

play rolling-upgrade.yml -e version=v2 || fail "the second run"
recap | grep -q 'changed=0' || fail "a second run changed something: $(recap)"

play rolling-upgrade.yml -e version=v3 --check || fail "check mode"
recap | grep -q 'changed=1' || fail "check mode would change nothing: $(recap)"
[[ $(live) == v2 ]] || fail "check mode changed the live version"

rc=0
play rolling-upgrade.yml -e version=v3 -e '{"command": ["/bin/false"]}' || rc=$?
[[ $rc != 0 ]] || fail "a release that cannot start did not fail the play"
grep -q 'v3 of web was not promoted' "$work/play.log" || fail "no reason from batond in the failure"
grep -q 'v2 keeps serving' "$work/play.log" || fail "the failure does not say what keeps serving"
[[ $(live) == v2 ]] || fail "v2 is not serving after the failed release"
echo "the failed release: $(grep -o '"msg": "[^"]*"' "$work/play.log" | head -1)"

play rollback.yml -e to=v1 || fail "the rollback to v1"
recap | grep -q 'changed=1' || fail "rollback: $(recap)"
[[ $(live) == v1 ]] || fail "v1 is not live after the rollback"
play rollback.yml -e to=v1 || fail "the second rollback run"
recap | grep -q 'changed=0' || fail "a second rollback changed something: $(recap)"

ansible localhost -i "$work/inventory.ini" -m baton.baton.info -a "socket=$work/ctl.sock service=web" \
  >"$work/play.log" 2>&1 || fail "baton.baton.info"
grep -q '"outcome": "failed"' "$work/play.log" || fail "info: the history lacks the failed release"
ansible-doc baton.baton.release | grep -q 'wait_drain' || fail "ansible-doc baton.baton.release"
echo "ansible: upgrade, idempotent rerun, check mode, failed release, rollback: as expected"
