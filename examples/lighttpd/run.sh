#!/bin/sh
# Starts lighttpd for batond: run.sh VERSION PORT PROBE_PORT
set -e
version=$1 port=$2 probe_port=$3
here=$(cd "$(dirname "$0")" && pwd)
run=${BATON_RUN_DIR:-/tmp/baton-lighttpd}/$version-$$
mkdir -p "$run/htdocs"
echo "version=$version" > "$run/htdocs/index.html"
sed -e "s|@RUN@|$run|g" -e "s|@PORT@|$port|g" -e "s|@PROBE_PORT@|$probe_port|g" \
  "$here/lighttpd.conf.in" > "$run/lighttpd.conf"
exec lighttpd -D -f "$run/lighttpd.conf"
