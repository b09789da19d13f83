#!/bin/bash
# Runs every fuzz target long (default 20 minutes each, FUZZ_SECONDS to change) with
# no sanitizer (safe Rust: panics, hangs and OOM are what we look for; SANITIZER=address to
# add ASan), one after the other, and prints execs and crashes per target.
# `make fuzz-smoke` is the short run that `make check` does.
set -uo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-1200}
./seed.sh
for t in ${TARGETS:-$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -v preroot-fuzz)}; do
  log=$(mktemp)
  RUSTC_BOOTSTRAP=1 cargo fuzz run -s "${SANITIZER:-none}" "$t" -- -max_total_time="$SECONDS_EACH" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "$t: ${execs:-?} execs, exit $rc, artifacts: $(ls artifacts/"$t" 2>/dev/null | wc -l)"
  rm -f "$log"
done
