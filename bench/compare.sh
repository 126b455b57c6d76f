#!/usr/bin/env bash
# Warren against RabbitMQ 3.10 (and garagemq, where it runs) on this machine, in one run: the same scenario matrix
# against each broker, alternating brokers, each scenario at least twice; then docs/benchmarks.md is rewritten with
# every broker's figures, the Warren/RabbitMQ ratio, the machine, the exact commands and the date.
#
#   1. 1 producer, 1 consumer, 16 B, transient, autoack
#   2. the same with manual acks (multi-ack 100, prefetch 1000)
#   3. 1 KiB persistent to a durable queue, confirm window 1000, manual acks (Warren with sync = "always")
#   4. 4 producers, 4 consumers, 4 queues, 1 KiB, autoack: each producer/consumer pair on its own queue (--spread)
#   5. fan-out: 1 producer to a fanout exchange bound to 10 queues, one consumer each
#   6. latency at a fixed 1,000 msg/s: end-to-end p50 and p99
#   7. backlog: N 16 B messages published with no consumer, then drained (a fresh broker each run: peak RSS)
#   8. idle connections with one channel each: broker RSS increase per connection (a fresh broker each run)
#   9. fan-in: 16 producers, 1 queue, 2 consumers, 16 B, manual ack
#  10. slow consumer: 1 producer offering 10,000 msg/s, 1 consumer that processes at most 5,000 msg/s
#      (perf --consumer-rate); the offered rate is capped so that the drain after the run stays bounded
# Sustained scenarios report the consumed rate while the producers publish (the drain after they stop is not in
# it), end-to-end latency and the broker's peak RSS during the run (perf --broker-pid).
#
# Usage: bench/compare.sh [--seconds S] [--runs N] [--backlog N] [--idle N] [--quick] [--no-garagemq] [--out FILE]
#   --seconds S   publishing time per run of scenarios 1-6, 9 and 10 (default 15)
#   --runs N      runs of each scenario per broker (default 2, at least 2)
#   --quick       a smoke check: 3 s runs, a 100,000-message backlog, 200 idle connections; the page says so
# Needs the release build (cargo build --release), rabbitmq-server and optionally garagemq (apt-get install
# rabbitmq-server garagemq), python3. It reports figures; it asserts nothing about speed. Brokers are stopped by PID.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$HERE/brokers.sh"

COMMAND_LINE="bench/compare.sh${*:+ $*}"
SECONDS_PER_RUN="" BACKLOG="" IDLE="" RUNS=2 QUICK=0 GARAGE=1 OUT="$ROOT/docs/benchmarks.md"
usage() { sed -n '20,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --backlog) BACKLOG=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --no-garagemq) GARAGE=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) usage ;;
  esac
done
if ((QUICK)); then
  : "${SECONDS_PER_RUN:=3}" "${BACKLOG:=100000}" "${IDLE:=200}"
else
  : "${SECONDS_PER_RUN:=15}" "${BACKLOG:=1000000}" "${IDLE:=1000}"
fi
((RUNS >= 2)) || { echo "--runs must be at least 2" >&2; exit 2; }
[[ -x "$WARREN_BIN" ]] || { echo "no release build at $WARREN_BIN: cargo build --release" >&2; exit 2; }
command -v rabbitmq-server >/dev/null || { echo "rabbitmq-server is not installed" >&2; exit 2; }

WORK=${BENCH_DIR:-/tmp/warren-compare}
rm -rf "$WORK"; mkdir -p "$WORK/logs"
RESULTS="$WORK/results.jsonl"; : >"$RESULTS"
SCENARIO_FILE="$WORK/scenarios.tsv"; : >"$SCENARIO_FILE"
NOTES="$WORK/notes.txt"; : >"$NOTES"

declare -A PORT=([warren]=5811 [rabbitmq]=5812 [garagemq]=5813) PID=()
BROKERS=(warren rabbitmq)
IDLE_PERF_PID=""
cleanup() {
  [[ -n "$IDLE_PERF_PID" ]] && kill "$IDLE_PERF_PID" 2>/dev/null
  for b in "${!PID[@]}"; do stop_pid "${PID[$b]}"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { echo "$*" | tee -a "$NOTES" >&2; }
log() { echo "[$(date +%T)] $*" >&2; }
commas() { echo "$1" | sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta'; }

start_broker() { # name
  local b=$1 dir="$WORK/$1"
  case $b in
    warren) start_warren "${PORT[$b]}" "$dir" && PID[$b]=$WARREN_PID ;;
    rabbitmq) start_rabbitmq "${PORT[$b]}" "$dir" && PID[$b]=$RABBIT_PID ;;
    garagemq) start_garagemq "${PORT[$b]}" "$dir" && PID[$b]=$GARAGE_PID ;;
  esac
}
stop_broker() { stop_pid "${PID[$1]:-}"; unset "PID[$1]"; }
uri() { echo "amqp://guest:guest@127.0.0.1:${PORT[$1]}/%2f"; }

# perf NAME LOG OPTIONS...: one `warren perf --json` run; prints its summary line ({} if it printed none).
perf() {
  local b=$1 log=$2; shift 2
  local out
  local pid=()
  [[ -n "${PID[$b]:-}" ]] && pid=(--broker-pid "${PID[$b]}")
  out=$("$WARREN_BIN" perf --uri "$(uri "$b")" --json "${pid[@]}" "$@" 2>"$WORK/logs/$log.err" | tail -1) || true
  [[ $out == "{"* ]] || out='{}'
  echo "$out"
}

# record SCENARIO BROKER RUN KEY=JSON...: one line of results.
record() {
  python3 -c '
import json, sys
s, b, r, *pairs = sys.argv[1:]
line = {"scenario": s, "broker": b, "run": int(r)}
for p in pairs:
    k, v = p.split("=", 1)
    line[k] = json.loads(v) if v else None
print(json.dumps(line))' "$@" >>"$RESULTS"
}

# Brokers in run order: as listed on odd runs, reversed on even runs, so no broker always goes first.
order() { # run
  if (($1 % 2)); then printf '%s\n' "${BROKERS[@]}"; else printf '%s\n' "${BROKERS[@]}" | tac; fi
}

source "$HERE/scenarios.sh" # scenario_options: the `warren perf` options of scenarios 1-6
TITLE=(
  ""
  "1 producer, 1 consumer, 16 B, transient, autoack"
  "1 producer, 1 consumer, 16 B, transient, manual ack (multi-ack 100, prefetch 1000)"
  "1 KiB persistent to a durable queue, confirm window 1000, manual ack (multi-ack 100, prefetch 1000)"
  "4 producers, 4 consumers, 4 queues (a producer/consumer pair per queue), 1 KiB transient, autoack"
  "fan-out: 1 producer, fanout exchange bound to 10 queues, one consumer each, 16 B transient, manual ack"
  "latency at a fixed 1,000 msg/s: 1 producer, 1 consumer, 16 B transient, manual ack"
  "backlog: $(commas "$BACKLOG") x 16 B transient published with no consumer, then drained (fresh broker)"
  "$(commas "$IDLE") idle connections with one channel each (fresh broker)"
  "fan-in: 16 producers, 1 queue, 2 consumers, 16 B transient, manual ack"
  "slow consumer: 1 producer offering 10,000 msg/s, 1 consumer processing at most 5,000 msg/s, 16 B, manual ack"
)
BACKLOG_PUBLISH="--producers 1 --consumers 0 --size 16 --pmessages $BACKLOG --queue cmp-backlog"
BACKLOG_DRAIN="--producers 0 --consumers 1 --predeclared --queue cmp-backlog --multi-ack-every 100 --qos 1000 --cmessages $BACKLOG"
IDLE_HOLD=8
IDLE_OPTIONS="--idle-connections $IDLE --time $IDLE_HOLD"
for s in 1 2 3 4 5 6 9 10; do printf '%s\t%s\t%s\n' "$s" "${TITLE[$s]}" "$(scenario_options "$s" 1)" >>"$SCENARIO_FILE"; done
printf '7\t%s\t%s\n' "${TITLE[7]}" "$BACKLOG_PUBLISH;;$BACKLOG_DRAIN" >>"$SCENARIO_FILE" # ;; separates commands
printf '8\t%s\t%s\n' "${TITLE[8]}" "$IDLE_OPTIONS" >>"$SCENARIO_FILE"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WARREN_COMMIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

# --- the brokers ---------------------------------------------------------------------------------------------------
if ((GARAGE)) && ! command -v garagemq >/dev/null; then
  note "garagemq: not installed (apt-get install garagemq); its column is left out."
  GARAGE=0
fi
for b in warren rabbitmq $( ((GARAGE)) && echo garagemq); do
  log "starting $b on port ${PORT[$b]}"
  if ! start_broker "$b"; then
    if [[ $b == garagemq ]]; then
      note "garagemq: did not start ($(tail -3 "$WORK/garagemq.log" 2>/dev/null | tr '\n' ' ')); its column is left out."
      stop_broker garagemq; GARAGE=0; continue
    fi
    echo "$b did not start; see $WORK/$b.log" >&2; exit 1
  fi
done
((GARAGE)) && BROKERS+=(garagemq)

for b in "${BROKERS[@]}"; do # one unrecorded warm-up run each (RabbitMQ's JIT, first allocations)
  perf "$b" "warmup-$b" --size 16 --multi-ack-every 100 --qos 1000 --time 2 --queue cmp-warmup >/dev/null
done

# --- scenarios 1-6, 9, 10: every broker running, alternating -----------------------------------------------------
for s in 1 2 3 4 5 6 9 10; do
  for ((run = 1; run <= RUNS; run++)); do
    for b in $(order "$run"); do
      log "scenario $s, run $run, $b"
      # shellcheck disable=SC2046 # the options are words
      record "$s" "$b" "$run" "perf=$(perf "$b" "s$s-$b-$run" $(scenario_options "$s" "$run"))"
    done
  done
done
for b in "${BROKERS[@]}"; do stop_broker "$b"; done

# --- scenarios 7 and 8: each on a fresh start of one broker, alone on the machine ---------------------------------
for ((run = 1; run <= RUNS; run++)); do
  for b in $(order "$run"); do
    log "scenario 7 (backlog of $BACKLOG), run $run, $b"
    start_broker "$b" || { note "scenario 7, $b, run $run: the broker did not start"; continue; }
    # shellcheck disable=SC2086
    published=$(perf "$b" "s7-publish-$b-$run" $BACKLOG_PUBLISH)
    # shellcheck disable=SC2086
    drained=$(perf "$b" "s7-drain-$b-$run" $BACKLOG_DRAIN)
    record 7 "$b" "$run" "publish=$published" "drain=$drained" "peak_rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/${PID[$b]}/status")"
    stop_broker "$b"
  done
done
for ((run = 1; run <= RUNS; run++)); do
  for b in $(order "$run"); do
    log "scenario 8 ($IDLE idle connections), run $run, $b"
    start_broker "$b" || { note "scenario 8, $b, run $run: the broker did not start"; continue; }
    sleep 3 # let the broker settle after boot
    before=$(current_rss_kib "${PID[$b]}")
    # shellcheck disable=SC2086
    "$WARREN_BIN" perf --uri "$(uri "$b")" --json $IDLE_OPTIONS >"$WORK/logs/s8-$b-$run.json" 2>"$WORK/logs/s8-$b-$run.err" &
    IDLE_PERF_PID=$!
    opened="" after=""
    for _ in $(seq 600); do # the tool says "N idle connections open" once it has opened them all
      opened=$(grep -oE '^[0-9]+ idle connections open' "$WORK/logs/s8-$b-$run.err" | cut -d' ' -f1 || true)
      [[ -n "$opened" ]] && break
      kill -0 "$IDLE_PERF_PID" 2>/dev/null || break
      sleep 0.2
    done
    if [[ -n "$opened" ]]; then
      sleep 2 # connections open; let the broker finish setting them up
      after=$(current_rss_kib "${PID[$b]}")
    fi
    wait "$IDLE_PERF_PID" || true
    IDLE_PERF_PID=""
    summary=$(tail -1 "$WORK/logs/s8-$b-$run.json" 2>/dev/null)
    [[ $summary == "{"* ]] || summary='{}'
    record 8 "$b" "$run" "rss_before_kib=$before" "rss_after_kib=$after" "opened=${opened:-0}" "perf=$summary"
    stop_broker "$b"
  done
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the page -------------------------------------------------------------------------------------------------------
export RESULTS SCENARIO_FILE NOTES OUT QUICK RUNS SECONDS_PER_RUN BACKLOG IDLE COMMAND_LINE STARTED LOAD_START LOAD_END WORK
export BROKERS_RUN="${BROKERS[*]}" WARREN_BIN WARREN_COMMIT IDLE_HOLD
export WARREN_PORT=${PORT[warren]} RABBIT_PORT=${PORT[rabbitmq]} GARAGE_PORT=${PORT[garagemq]}
python3 "$HERE/compare_report.py"
log "wrote $OUT (raw results in $RESULTS, logs in $WORK/logs)"
