#!/bin/sh
# Runs one fuzz target for a bounded time from its seed corpus, without changing the seeds:
#   run_fuzzer.sh TARGET SEED_DIR SECONDS
# New inputs go to a scratch corpus; a crash leaves its input in the scratch directory,
# whose path is printed, and fails the run.
set -eu
target=$1 seeds=$2 seconds=$3
scratch=$(mktemp -d "${TMPDIR:-/tmp}/baton-fuzz.XXXXXX")
mkdir "$scratch/corpus"
if "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$scratch/" "$scratch/corpus" "$seeds" 2>"$scratch/log"; then
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+[[:space:]]+DONE)" "$scratch/log" || true
  rm -rf "$scratch"
else
  tail -n 60 "$scratch/log"
  echo "fuzz target failed; the input and log are in $scratch" >&2
  exit 1
fi
