#!/bin/sh
# Starts nginx for batond: run.sh VERSION PORT PROBE_PORT [extra nginx.conf lines]
# Writes a per-generation config and run directory, then execs nginx (same pid).
set -e
version=$1 port=$2 probe_port=$3
here=$(cd "$(dirname "$0")" && pwd)
run=${BATON_RUN_DIR:-/tmp/baton-nginx}/$version-$$
mkdir -p "$run"
sed -e "s|@RUN@|$run|g" -e "s|@PORT@|$port|g" -e "s|@PROBE_PORT@|$probe_port|g" -e "s|@VERSION@|$version|g" \
  "$here/nginx.conf.in" > "$run/nginx.conf"
if [ -n "$4" ]; then echo "$4" >> "$run/nginx.conf"; fi
exec nginx -p "$run" -c "$run/nginx.conf"
