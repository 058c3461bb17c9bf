#!/bin/sh
# One script for every hook of examples/hooks/baton.toml; batond says which in $BATON_HOOK.
#  - before_start: refuses while /tmp/baton-hooks/freeze exists (the upgrade fails with
#    this message), else puts the service in Consul maintenance for the handover;
#  - on_promoted, on_failed: takes it out of maintenance again;
#  - every hook: posts what happened as JSON to $BATON_WEBHOOK_URL (set in batond's
#    environment), or prints it when that is unset.
# Without a Consul agent on 127.0.0.1:8500 the toggle says so and goes on.
consul() {  # consul true|false
  curl -fsS --max-time 2 -X PUT -G --data-urlencode "reason=baton: $BATON_HOOK $BATON_VERSION" \
    "http://127.0.0.1:8500/v1/agent/service/maintenance/$BATON_SERVICE?enable=$1" 2>/dev/null ||
    echo "no Consul agent answered; maintenance not toggled" >&2
}
webhook() {
  body=$(printf '{"hook":"%s","service":"%s","version":"%s","from":"%s","generation":"%s","reason":"%s"}' \
    "$BATON_HOOK" "$BATON_SERVICE" "$BATON_VERSION" "$BATON_FROM_VERSION" "$BATON_GENERATION" "$BATON_REASON")
  if [ -z "${BATON_WEBHOOK_URL:-}" ]; then
    echo "$body"
  else
    curl -fsS --max-time 5 -H 'Content-Type: application/json' -d "$body" "$BATON_WEBHOOK_URL"
  fi
}
case "$BATON_HOOK" in
  before_start)
    if [ -e /tmp/baton-hooks/freeze ]; then
      echo "deploys are frozen (/tmp/baton-hooks/freeze)" >&2
      exit 1
    fi
    consul true
    ;;
  on_promoted | on_failed) consul false ;;
esac
webhook
