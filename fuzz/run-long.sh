#!/bin/bash
# Runs every fuzz target long, one at a time, until each has FUZZ_RUNS executions
# (default 10 million), with no sanitizer (safe Rust: panics, hangs and OOM are what we look
# for; SANITIZER=address to add ASan). Run it as `nice -n 19 fuzz/run-long.sh` on a shared
# machine. `make fuzz-smoke` is the short run that `make check` does.
#
# Resumable: targets take turns, one chunk of at most FUZZ_CHUNK seconds (default 600) each per
# pass, until every one is done; each finished chunk appends "execs seconds crashes" to
# long/<target>.runs, so an interrupted run loses at most one chunk and the next start
# continues where it stopped (targets already at FUZZ_RUNS are skipped; FUZZ_RESET=1 starts
# over). A target stops at its first crash, whose
# input libFuzzer leaves in artifacts/<target>/. The binaries are built once at the start and
# copied to long/bin/, so editing src/ during the run does not change what is fuzzed.
#
# Prints, and writes to long/summary.tsv, one line per target: execs, exec/s, wall seconds,
# corpus files, crashes. TARGETS="a b" limits the run; FUZZ_BUILD=0 reuses long/bin/.
set -uo pipefail
cd "$(dirname "$0")"
RUNS=${FUZZ_RUNS:-10000000}
CHUNK=${FUZZ_CHUNK:-600}
SAN=${SANITIZER:-none}
ALL=$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -v preroot-fuzz)
TARGETS=${TARGETS:-$ALL}
mkdir -p long/bin
[ "${FUZZ_RESET:-0}" = 1 ] && rm -f long/*.runs

if [ "${FUZZ_BUILD:-1}" = 1 ]; then
  ./seed.sh
  RUSTC_BOOTSTRAP=1 cargo fuzz build -s "$SAN" || exit 1
  dir=target/x86_64-unknown-linux-gnu/release
  for t in $ALL; do cp "$dir/$t" "long/bin/$t.new" && mv "long/bin/$t.new" "long/bin/$t"; done
fi

# Sums of the finished chunks of target $1: "execs seconds crashes".
totals() { cat "long/$1.runs" 2>/dev/null | awk '{e+=$1; s+=$2; c+=$3} END {printf "%d %d %d\n", e, s, c}'; }

summary() {
  local t=$1 e s c n
  read -r e s c < <(totals "$t")
  n=$(find "corpus/$t" -type f 2>/dev/null | wc -l)
  printf '%s\t%d\t%d\t%d\t%d\t%d\n' "$t" "$e" "$(( s > 0 ? e / s : 0 ))" "$s" "$n" "$c"
}

# One chunk of target $1; returns 1 when the target is finished (FUZZ_RUNS reached or crashed).
chunk() {
  local t=$1 done_e crashes left log before after start rc secs execs new
  read -r done_e _ crashes < <(totals "$t")
  [ "$crashes" -eq 0 ] || return 1
  left=$(( RUNS - done_e ))
  [ "$left" -gt 0 ] || return 1
  if [ ! -x "long/bin/$t" ]; then
    echo "$t: long/bin/$t is missing: run once with FUZZ_BUILD=1" >&2
    exit 2
  fi
  mkdir -p "corpus/$t" "artifacts/$t"
  log=long/$t.log
  before=$(artifacts "$t")
  start=$(date +%s)
  "long/bin/$t" -runs="$left" -max_total_time="$CHUNK" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" "corpus/$t" >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  after=$(artifacts "$t")
  new=$(( after - before ))
  if [ -z "$execs" ]; then
    # A crash ends libFuzzer without final stats: take the last status line's count.
    execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -1)
    if [ "$new" -eq 0 ] && [ "$rc" -ne 0 ]; then new=1; fi
  fi
  echo "${execs:-0} $secs $new" >> "long/$t.runs"
  echo "$(date -u +%H:%M:%S) $t: chunk of ${execs:-0} execs in ${secs}s, exit $rc, new crashes $new"
  if [ "$new" -ne 0 ]; then grep -m3 -E 'panicked|ERROR|deadly signal|Test unit written' "$log"; return 1; fi
  return 0
}

artifacts() {
  find "artifacts/$1" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l
}

# Round robin: each pass gives every unfinished target one chunk, so a run cut short by a
# deadline leaves all targets at comparable counts.
while :; do
  busy=0
  for t in $TARGETS; do chunk "$t" && busy=1; done
  [ "$busy" = 1 ] || break
done

printf 'target\texecs\texec/s\twall_s\tcorpus\tcrashes\n' > long/summary.tsv
for t in $ALL; do summary "$t" >> long/summary.tsv; done
column -t -s $'\t' long/summary.tsv
