# The fleet, for tests/fleet_test.sh and bench/fleet.sh (sourced, with `set -euo pipefail`):
# hosts as network namespaces on a bridge, with a private /24 used only here and no
# default route, each with its own OpenSSH sshd and host key; HAProxy in the root
# namespace in front of them; Ansible reaching them over SSH; load through HAProxy.
# Needs root. Everything it starts or creates is named by $fleet_tag or recorded in
# fleet_pids, and cleaned up on exit by those names and pids.

fleet_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fleet_hosts=(1 2 3)
fleet_tag=bf$$  # interface names must fit in 15 characters
fleet_pids=()   # stopped in reverse order
fleet_made_run_sshd=
fleet_work=$(mktemp -d /tmp/baton-fleet-XXXXXX)
chmod 755 "$fleet_work"

fleet_cleanup() {
  local i
  for ((i = ${#fleet_pids[@]} - 1; i >= 0; i--)); do kill -TERM "${fleet_pids[i]}" 2>/dev/null || true; done
  for pid in "${fleet_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for h in "${fleet_hosts[@]}"; do ip netns del "$fleet_tag-h$h" 2>/dev/null || true; done  # and their veth pairs
  ip link del "$fleet_tag-br" 2>/dev/null || true
  if [[ -n $fleet_made_run_sshd ]]; then rmdir /run/sshd 2>/dev/null || true; fi
  rm -rf "$fleet_work"
}
trap fleet_cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  [[ -f $fleet_work/play.log ]] && tail -40 "$fleet_work/play.log" >&2
  for h in "${fleet_hosts[@]}"; do [[ -f $fleet_work/h$h/host.log ]] && tail -5 "$fleet_work/h$h/host.log" >&2; done
  exit 1
}

fleet_require() {  # exits 77 (a skip) unless root; fails when a tool is missing
  if ((EUID != 0)); then
    echo "SKIPPED: the fleet runs in network namespaces: run it as root" >&2
    exit 77
  fi
  for tool in ip /usr/sbin/sshd ssh-keygen haproxy ansible-playbook curl "$@"; do
    command -v "$tool" >/dev/null || fail "$tool is missing (./run installs it)"
  done
}

wait_until() {  # wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do "${@:2}" && return 0; sleep 0.1; done
  return 1
}

# The hosts: fleet_net is the /24's first three parts; host h is $fleet_net.1h, with its
# files in $fleet_work/hH. Each runs sshd; known_hosts holds exactly their keys.
fleet_hosts_up() {
  fleet_net=
  for third in $(seq $(($$ % 200 + 20)) 250); do
    if ! ip -4 route show | grep -q "^10\.213\.$third\."; then fleet_net=10.213.$third; break; fi
  done
  [[ -n $fleet_net ]] || fail "no free 10.213.x.0/24"
  ip link add "$fleet_tag-br" type bridge
  ip addr add "$fleet_net.1/24" dev "$fleet_tag-br"
  ip link set "$fleet_tag-br" up
  [[ -d /run/sshd ]] || { mkdir -p /run/sshd && fleet_made_run_sshd=1; }
  ssh-keygen -q -t ed25519 -N '' -f "$fleet_work/id_ed25519"
  cp "$fleet_work/id_ed25519.pub" "$fleet_work/authorized_keys"
  local h ns d
  for h in "${fleet_hosts[@]}"; do
    ns=$fleet_tag-h$h
    d=$fleet_work/h$h
    mkdir -p "$d"
    ip netns add "$ns"
    ip link add "$fleet_tag-v$h" type veth peer name eth0 netns "$ns"
    ip link set "$fleet_tag-v$h" master "$fleet_tag-br" up
    ip -n "$ns" addr add "$fleet_net.1$h/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
    echo "$fleet_net.1$h $(cut -d' ' -f1-2 "$d/host_key.pub")" >>"$fleet_work/known_hosts"
    cat >"$d/sshd_config" <<EOF
ListenAddress $fleet_net.1$h
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $fleet_work/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
    ip netns exec "$ns" /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>"$d/sshd.log" &
    fleet_pids+=($!)
  done
}

fleet_on() {  # fleet_on HOST COMMAND...: runs COMMAND in the background on that host; logs to hH/host.log
  ip netns exec "$fleet_tag-h$1" "${@:2}" >>"$fleet_work/h$1/host.log" 2>&1 &
  fleet_pids+=($!)
}

fleet_free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# HAProxy on 127.0.0.1:$fleet_port over every host's port 8080, checking GET /readyz on
# CHECK_PORT (or the service port itself, GET /, without a health endpoint).
#   strict:    no retry, no redispatch: a request a host fails reaches the client.
#   forgiving: 3 retries on a failed connect or an empty response, on another host.
fleet_haproxy() {  # fleet_haproxy strict|forgiving CHECK_PORT|-
  local policy=$1 check_port=$2
  fleet_port=$(fleet_free_port)
  fleet_stats_port=$(fleet_free_port)
  {
    cat <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-server-close
EOF
    if [[ $policy == strict ]]; then
      echo "  retries 0"
    else
      printf '  retries 3\n  option redispatch\n  retry-on conn-failure empty-response\n'
    fi
    cat <<EOF
frontend fleet
  bind 127.0.0.1:$fleet_port
  default_backend web
backend web
  balance roundrobin
EOF
    if [[ $check_port == - ]]; then
      printf '  option httpchk GET /\n  default-server check inter 200ms fall 2 rise 2\n'
    else
      printf '  option httpchk GET /readyz\n  default-server check port %s inter 200ms fall 2 rise 2\n' "$check_port"
    fi
    echo "  http-check expect status 200"
    for h in "${fleet_hosts[@]}"; do echo "  server h$h $fleet_net.1$h:8080"; done
    cat <<EOF
listen stats
  bind 127.0.0.1:$fleet_stats_port
  stats enable
  stats uri /stats
EOF
  } >"$fleet_work/haproxy.cfg"
  haproxy -db -f "$fleet_work/haproxy.cfg" >"$fleet_work/haproxy.log" 2>&1 &
  fleet_haproxy_pid=$!
  fleet_pids+=($fleet_haproxy_pid)
  wait_until 20 fleet_all_up || fail "HAProxy does not see every host ready: $(fleet_stats | cut -d, -f1,2,18)"
}
fleet_haproxy_stop() {
  kill -TERM "$fleet_haproxy_pid"
  wait "$fleet_haproxy_pid" 2>/dev/null || true
}
fleet_stats() { curl -fsS "http://127.0.0.1:$fleet_stats_port/stats;csv" 2>/dev/null; }
fleet_all_up() { [[ $(fleet_stats | grep -c '^web,h[0-9],.*,UP,') == "${#fleet_hosts[@]}" ]]; }
# How many times HAProxy marked a host down (its checks failed twice in a row).
fleet_downs() { fleet_stats | awk -F, '$1 == "web" && $2 ~ /^h[0-9]$/ { n += $23 } END { print n + 0 }'; }

# The inventory (group "web", with HOSTVARS on each host: a string with $h expanded), and
# Ansible over SSH with only the fleet's host keys trusted and no ssh master left behind.
fleet_ansible() {  # fleet_ansible 'HOSTVARS'
  {
    echo "[web]"
    for h in "${fleet_hosts[@]}"; do echo "h$h ansible_host=$fleet_net.1$h $(eval "echo \"$1\"")"; done
    cat <<EOF
[web:vars]
ansible_user=root
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_private_key_file=$fleet_work/id_ed25519
EOF
  } >"$fleet_work/inventory.ini"
  export ANSIBLE_COLLECTIONS_PATH=$fleet_repo/ansible ANSIBLE_LOCAL_TEMP=$fleet_work/tmp
  export ANSIBLE_REMOTE_TEMP=$fleet_work/remote-tmp ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
  export ANSIBLE_PIPELINING=1 HOME=$fleet_work
  export ANSIBLE_SSH_ARGS="-F /dev/null -o ControlMaster=no -o BatchMode=yes -o UserKnownHostsFile=$fleet_work/known_hosts -o StrictHostKeyChecking=yes"
}

# Runs ansible-playbook PLAYBOOK ARGS... with load through HAProxy (2 clients opening a
# connection per request, 2 keep-alive); returns its exit code. The load's report is in
# $fleet_work/load.json; load_ok and load_failed hold its counts, play_seconds how long
# the play took.
fleet_play_under_load() {
  local rc=0 load t0=$EPOCHREALTIME
  "$fleet_loadgen" --port "$fleet_port" --fresh 2 --keepalive 2 --json >"$fleet_work/load.json" &
  load=$!
  ansible-playbook -i "$fleet_work/inventory.ini" "$@" >"$fleet_work/play.log" 2>&1 || rc=$?
  play_seconds=$(/usr/bin/python3 -c "print(f'{$EPOCHREALTIME - $t0:.1f}')")
  kill -INT "$load"
  wait "$load" || true
  load_ok=$(fleet_load_field ok)
  load_failed=$(fleet_load_field failed)
  return $rc
}
fleet_load_field() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$fleet_work/load.json" "$1"; }
# Whether the last load got answers from each VERSION.
fleet_served() {
  /usr/bin/python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["versions"]; sys.exit(any(x not in v for x in sys.argv[2:]))' \
    "$fleet_work/load.json" "$@"
}
fleet_recap() { grep -E "^h$1 +:" "$fleet_work/play.log" || echo "h$1 not in the recap"; }
