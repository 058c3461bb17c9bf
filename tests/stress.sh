#!/usr/bin/env bash
# ./run stress [RUNS]: the integration and end-to-end suites RUNS times (default 10) in a
# row, with stress-ng keeping every core busy alongside, to shake out races. Prints each
# run's failures and a summary; exits 1 if any run failed.
set -uo pipefail
build=$1
runs=${2:-10}
logs=$build/stress
rm -rf "$logs"
mkdir -p "$logs"

stress-ng --cpu "$(nproc)" --quiet &
load=$!
trap 'kill "$load" 2>/dev/null; wait "$load" 2>/dev/null' EXIT

failed_runs=0
declare -A failures=()
for ((i = 1; i <= runs; i++)); do
  start=$SECONDS
  ctest --test-dir "$build" -L 'integration|e2e' -j 2 --timeout 600 --output-on-failure >"$logs/run$i.log" 2>&1
  rc=$?
  summary=$(grep -E 'tests passed' "$logs/run$i.log" | tail -1)
  echo "run $i/$runs: ${summary:-no summary} ($((SECONDS - start)) s)"
  if ((rc != 0)); then
    ((failed_runs++))
    while IFS= read -r name; do
      echo "  failed: $name"
      failures[$name]=$((${failures[$name]:-0} + 1))
    done < <(sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (\(Failed\|Timeout\|SEGFAULT\|Subprocess aborted\|Exception\).*/\1/p' "$logs/run$i.log")
  fi
done

echo "stress: $((runs - failed_runs)) of $runs runs passed with the CPU loaded (logs in $logs)"
for name in "${!failures[@]}"; do echo "  ${failures[$name]}x $name"; done
((failed_runs == 0))
