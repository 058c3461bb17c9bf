#!/usr/bin/env bash
# The Debian package, built by CPack from this build tree: it holds what it should, its
# dependencies come from dpkg-shlibdeps, it installs into an empty root with a dpkg
# database of its own, batond and batonctl run from there, and removing and purging it
# leave nothing behind.      usage: package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d)
batond_pid=
cleanup() {
  [[ -n $batond_pid ]] && kill -9 "$batond_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack --config CPackConfig.cmake -B "$work/out") >"$work/cpack.log" 2>&1 || { cat "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/out/baton_*_amd64.deb) || fail "no baton_<version>_amd64.deb in $(ls "$work/out")"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/sbin/batond ./usr/bin/batonctl ./usr/share/man/man8/batond.8 ./usr/share/man/man1/batonctl.1 \
         ./usr/share/man/man5/baton.toml.5 ./usr/share/bash-completion/completions/batonctl \
         ./lib/systemd/system/batond.service ./etc/baton/baton.toml; do
  grep -q " $f\$" <<<"$contents" || { echo "$contents"; fail "$f is not in the package"; }
done
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libssh libbpf; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
# Compiled in (libraries/CMakeLists.txt): a dependency on one would mean batond loads it.
# libstdc++ too where the build links it statically (BATON_STATIC_CXX: not under the
# sanitizers).
compiled_in=(libspdlog libfmt libtomlplusplus libboost-json)
grep -qx 'BATON_STATIC_CXX:BOOL=ON' "$build/CMakeCache.txt" && compiled_in+=(libstdc++)
for lib in "${compiled_in[@]}"; do
  if grep -q "$lib" <<<"$depends"; then fail "Depends has $lib, which is compiled in: $depends"; fi
done
# systemd's store holds batond's sockets if batond dies; $FDSTORE tells batond (systemd < 254
# does not set it), so the two must agree.
unit=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./lib/systemd/system/batond.service)
store=$(sed -n 's/^FileDescriptorStoreMax=//p' <<<"$unit")
[[ -n $store && $store -gt 0 ]] || fail "the unit has no FileDescriptorStoreMax="
grep -qx "Environment=FDSTORE=$store" <<<"$unit" || fail "the unit does not set FDSTORE=$store"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/baton/baton.toml || fail "no conffiles entry"
echo "package: $(basename "$deb"), $(wc -l <<<"$contents") entries; Depends: $depends"

root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status"
dpkg --root="$root" --log=/dev/null --force-depends --force-script-chrootless -i "$deb" >"$work/dpkg.log" 2>&1 ||
  { cat "$work/dpkg.log"; fail "dpkg -i"; }
[[ $(dpkg-query --root="$root" -W -f='${Status}' baton) == "install ok installed" ]] || fail "not installed"

# The default configuration is a template: batond says so and exits 100 (fix the input).
rc=0
"$root/usr/sbin/batond" --check -c "$root/etc/baton/baton.toml" >"$work/check.log" 2>&1 || rc=$?
[[ $rc == 100 ]] && grep -q "no services defined" "$work/check.log" || { cat "$work/check.log"; fail "--check: $rc"; }

# Runs from the installed tree with a real configuration.
port=$((20000 + RANDOM % 10000))
cat >"$work/baton.toml" <<TOML
[daemon]
control_socket = "$work/ctl.sock"
state_dir = "$work/state"
[service.idle]
command = ["/bin/sleep", "3600"]
[service.idle.listen]
http = "tcp://127.0.0.1:$port"
TOML
"$root/usr/sbin/batond" -c "$work/baton.toml" >"$work/batond.log" 2>&1 &
batond_pid=$!
for _ in $(seq 100); do
  "$root/usr/bin/batonctl" -s "$work/ctl.sock" status idle >"$work/status.txt" 2>&1 && grep -q running "$work/status.txt" && break
  sleep 0.1
done
grep -q running "$work/status.txt" || { cat "$work/status.txt" "$work/batond.log"; fail "the installed batond did not run idle"; }
kill -TERM "$batond_pid"
rc=0
wait "$batond_pid" || rc=$?
batond_pid=
[[ $rc == 0 ]] || { cat "$work/batond.log"; fail "batond exited $rc on SIGTERM"; }

# Removal keeps the edited configuration (a conffile); purging takes it too.
dpkg --root="$root" --log=/dev/null --force-script-chrootless -r baton >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -r"; }
[[ ! -e $root/usr/sbin/batond && -e $root/etc/baton/baton.toml ]] || fail "dpkg -r left the wrong files"
dpkg --root="$root" --log=/dev/null --force-script-chrootless -P baton >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -P"; }
left=$(cd "$root" && find . -path ./var/lib/dpkg -prune -o -type f -print)
[[ -z $left ]] || fail "left after purge: $left"
echo "installed, ran, removed and purged cleanly"
