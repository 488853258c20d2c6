#!/usr/bin/env bash
# Bulk-delete throughput (a bench, not a test).
#
# Starts `callvault sim --latency-ms 20`, syncs N + BASE_N calls from it into a fresh archive,
# then in the same run and on the same simulator:
#   1. a sequential baseline: BASE_N deletes with --concurrency 1 (one request at a time);
#   2. N deletes (default 10,000) with --concurrency 32.
# It prints deletes/s for both (the executor's own figure from the summary line, and the
# end-to-end figure including planning and freezing the job) and their ratio.
#
# Usage: bench/delete.sh [release|dev]     (default release; env N, BASE_N, LATENCY, CONC)
# Target: >= 1,450 deletes/s at --concurrency 32 against 20 ms latency (the ceiling is
# 32 / 20 ms = 1,600/s).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${1:-release}
N=${N:-10000}
BASE_N=${BASE_N:-200}
LATENCY=${LATENCY:-20}
CONC=${CONC:-32}
KEY=bench-key

case "$PROFILE" in
release) cargo build --release --quiet; BIN=${CARGO_TARGET_DIR:-target}/release/callvault ;;
dev | debug) cargo build --quiet; BIN=${CARGO_TARGET_DIR:-target}/debug/callvault; PROFILE=dev ;;
*) echo "usage: $0 [release|dev]" >&2; exit 2 ;;
esac

WORK=$(mktemp -d)
SIM_PID=
cleanup() {
    if [ -n "$SIM_PID" ]; then kill "$SIM_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" sim --addr 127.0.0.1:0 --calls $((N + BASE_N)) --agents 4 --latency-ms "$LATENCY" \
    --api-key "$KEY" >"$WORK/sim.out" 2>"$WORK/sim.err" &
SIM_PID=$!
for _ in $(seq 100); do
    grep -q '^agents:' "$WORK/sim.out" 2>/dev/null && break
    sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$WORK/sim.out")
AGENTS=$(sed -n 's/^agents: //p' "$WORK/sim.out")
[ -n "$URL" ] || { echo "the simulator did not start" >&2; cat "$WORK/sim.err" >&2; exit 1; }

export BLUEJAY_API_KEY=$KEY
DB=$WORK/bench.db
agent_args=()
for a in $AGENTS; do agent_args+=(--agent "$a"); done
"$BIN" --db "$DB" -q sync bluejay --base-url "$URL" "${agent_args[@]}" --concurrency 16

now() { date +%s.%N; }

# Runs one delete job; prints "<executor deletes/s> <end-to-end deletes/s>".
run_delete() {
    local n=$1 conc=$2 sql=$3 t0 t1
    t0=$(now)
    "$BIN" --db "$DB" -q delete --select "$sql" --yes --max "$n" --concurrency "$conc" \
        2>"$WORK/delete.err"
    t1=$(now)
    local rate
    rate=$(sed -n 's/.*(\([0-9]*\) deletes\/s).*/\1/p' "$WORK/delete.err")
    awk -v n="$n" -v t0="$t0" -v t1="$t1" -v r="$rate" 'BEGIN { printf "%d %.0f\n", r, n / (t1 - t0) }'
}

read -r base_exec base_wall < <(run_delete "$BASE_N" 1 \
    "SELECT provider, id AS call_id FROM calls ORDER BY id LIMIT $BASE_N")
read -r conc_exec conc_wall < <(run_delete "$N" "$CONC" \
    "SELECT provider, id AS call_id FROM calls")

left=$("$BIN" --db "$DB" query "SELECT count(*) AS n FROM calls" --format csv | tail -n 1)
echo "profile: $PROFILE; simulator latency ${LATENCY} ms; calls left in the archive: $left"
printf '%-34s %10s %14s\n' "run" "deletes/s" "end-to-end/s"
printf '%-34s %10s %14s\n' "sequential ($BASE_N, --concurrency 1)" "$base_exec" "$base_wall"
printf '%-34s %10s %14s\n' "concurrent ($N, --concurrency $CONC)" "$conc_exec" "$conc_wall"
awk -v a="$conc_exec" -v b="$base_exec" 'BEGIN { printf "speed-up: %.1fx\n", a / b }'
