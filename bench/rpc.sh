#!/usr/bin/env bash
# RPC round trips over direct reply-to (amq.rabbitmq.reply-to), Warren against RabbitMQ 3.10 in one run on this
# machine, brokers alternating: `warren perf --rpc N` with R requesters of N requests in flight each and S responders
# (crates/warren-perf/src/rpc.rs). Prints a markdown table of round trips per second and round-trip latency.
#
# Usage: bench/rpc.sh [--seconds S] [--runs K] [--shapes "REQUESTERS:IN_FLIGHT:RESPONDERS ..."]
# Needs the release build and rabbitmq-server. Reports figures; asserts nothing. Brokers are stopped by PID.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/brokers.sh"
SECONDS_PER_RUN=10 RUNS=2 SHAPES="1:1:1 4:8:2 16:16:4"
while (($#)); do
  case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --shapes) SHAPES=$2; shift 2 ;;
    *) sed -n '6p' "$0" >&2; exit 2 ;;
  esac
done
WORK=${BENCH_DIR:-/tmp/warren-rpc}
rm -rf "$WORK"; mkdir -p "$WORK"; chmod 755 "$WORK"
PID=""
trap 'stop_pid "$PID"' EXIT

run_one() { # broker port shape
  local broker=$1 port=$2 shape=$3 requesters in_flight responders
  IFS=: read -r requesters in_flight responders <<<"$shape"
  "$WARREN_BIN" perf --uri "amqp://guest:guest@127.0.0.1:$port/%2f" --rpc "$in_flight" --producers "$requesters" \
    --consumers "$responders" --time "$SECONDS_PER_RUN" --size 64 --json 2>/dev/null | tail -1 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); l=d["latency_us"]; print("%.0f %s %s" % (d["rate"], l["p50"], l["p99"]))'
}

printf '| shape (requesters x in flight, responders) | broker | run | round trips/s | p50 us | p99 us |\n|---|---|---|---|---|---|\n' >"$WORK/table.md"
for run in $(seq 1 "$RUNS"); do
  for broker in warren rabbitmq; do
    port=5861
    if [[ $broker == warren ]]; then
      start_warren "$port" "$WORK/warren-$run"; PID=$WARREN_PID
    else
      start_rabbitmq "$port" "$WORK/rabbit-$run"; PID=$RABBIT_PID
    fi
    for shape in $SHAPES; do
      IFS=: read -r r f s <<<"$shape"
      read -r rate p50 p99 < <(run_one "$broker" "$port" "$shape")
      printf '| %s x %s, %s | %s | %s | %s | %s | %s |\n' "$r" "$f" "$s" "$broker" "$run" "$rate" "$p50" "$p99" |
        tee -a "$WORK/table.md"
    done
    stop_pid "$PID"; PID=""
  done
done
echo; sort -t'|' -k2,2 -k3,3 "$WORK/table.md" | grep -v '^|---' ; echo "(table also in $WORK/table.md)"
