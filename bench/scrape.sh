#!/usr/bin/env bash
# Scenario 1 (one publisher, one auto-ack consumer, 16-byte messages) with the management API and the Prometheus
# endpoint scraped every second, next to the same scenario left alone: what watching a broker costs it. Runs Warren
# and, with --rabbitmq, RabbitMQ 3.10 (Debian's rabbitmq-server with rabbitmq_management and rabbitmq_prometheus, a
# private node on its own ports) in the same run, alternating quiet and scraped runs, each on a fresh broker.
# A scrape is GET /api/overview, /api/queues, /api/connections, /api/channels and /metrics, one after another.
#
# Usage: bench/scrape.sh WARREN_BIN [--seconds S] [--runs N] [--rabbitmq]
# Reports figures (one line per run, then medians); asserts nothing about speed. Brokers are stopped by PID.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/brokers.sh"

(($# >= 1)) || { sed -n '8p' "$0" | sed 's/^# //' >&2; exit 2; }
WARREN_BIN=$1; shift
SECONDS_PER_RUN=15 RUNS=3 BROKERS="warren"
while (($#)); do
  case $1 in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --rabbitmq) BROKERS="warren rabbitmq"; shift ;;
    *) sed -n '8p' "$0" | sed 's/^# //' >&2; exit 2 ;;
  esac
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/warren-scrape.XXXXXX")"
chmod 755 "$WORK"   # RabbitMQ runs as the rabbitmq user and must reach its directory inside
RESULTS="$WORK/results.tsv"; : >"$RESULTS"
PORT=5831 MGMT=15831 PROM=15832 PID="" SCRAPER=""
cleanup() {
  [[ -n $SCRAPER ]] && kill "$SCRAPER" 2>/dev/null || true
  [[ -n $PID ]] && stop_pid "$PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # broker dir
  case $1 in
    warren)
      start_warren "$PORT" "$2" --management-listen "127.0.0.1:$MGMT" --prometheus-listen "127.0.0.1:$PROM"
      PID=$WARREN_PID ;;
    rabbitmq)
      RABBITMQ_PLUGINS=rabbitmq_management,rabbitmq_prometheus \
      RABBITMQ_EXTRA_CONF=$'management.tcp.port = '"$MGMT"$'\nmanagement.tcp.ip = 127.0.0.1\nprometheus.tcp.port = '"$PROM"$'\nprometheus.tcp.ip = 127.0.0.1' \
        start_rabbitmq "$PORT" "$2"
      PID=$RABBIT_PID ;;
  esac
  for _ in $(seq 120); do
    curl -sf -o /dev/null -u guest:guest "http://127.0.0.1:$MGMT/api/overview" && return 0
    sleep 0.5
  done
  echo "$1: the management API did not answer" >&2; return 1
}

scrape_forever() {
  while true; do
    for path in /api/overview /api/queues /api/connections /api/channels; do
      curl -s -o /dev/null -u guest:guest "http://127.0.0.1:$MGMT$path" || true
    done
    curl -s -o /dev/null "http://127.0.0.1:$PROM/metrics" || true
    sleep 1
  done
}

measure() { # broker mode run
  local dir="$WORK/$1-$2-$3" out
  start "$1" "$dir" || exit 1
  "$WARREN_BIN" perf --uri "amqp://guest:guest@127.0.0.1:$PORT/%2f" --size 16 --autoack --time 2 \
    --queue scrape-warmup >/dev/null 2>&1 || true
  if [[ $2 == scraped ]]; then scrape_forever & SCRAPER=$!; fi
  out=$("$WARREN_BIN" perf --uri "amqp://guest:guest@127.0.0.1:$PORT/%2f" --json --broker-pid "$PID" \
    --producers 1 --consumers 1 --size 16 --autoack --time "$SECONDS_PER_RUN" --queue "scrape-$3" 2>/dev/null \
    | tail -1) || true
  if [[ -n $SCRAPER ]]; then kill "$SCRAPER" 2>/dev/null || true; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=""; fi
  stop_pid "$PID"; PID=""
  rm -rf "$dir"
  [[ $out == "{"* ]] || out='{}'
  echo "$out"
}

for ((run = 1; run <= RUNS; run++)); do
  for b in $BROKERS; do
    if ((run % 2)); then order="quiet scraped"; else order="scraped quiet"; fi
    for mode in $order; do
      line=$(measure "$b" "$mode" "$run")
      printf '%s\t%s\t%s\t%s\n' "$b" "$mode" "$run" "$line" >>"$RESULTS"
      echo "[$(date +%T)] $b $mode run $run: $line" | cut -c1-200 >&2
    done
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
by = {}
for line in open(sys.argv[1]):
    b, mode, _, j = line.rstrip("\n").split("\t", 3)
    rate = json.loads(j).get("consume_rate")
    if rate:
        by.setdefault((b, mode), []).append(rate)
print("| broker | quiet, consumed msg/s (median) | scraped every second (median) | change |")
print("|---|---|---|---|")
for b in dict.fromkeys(k[0] for k in by):
    q, s = by.get((b, "quiet"), []), by.get((b, "scraped"), [])
    if q and s:
        mq, ms = statistics.median(q), statistics.median(s)
        print(f"| {b} | {mq:,.0f} ({len(q)} runs) | {ms:,.0f} ({len(s)} runs) | {100 * (ms - mq) / mq:+.1f} % |")
PY
