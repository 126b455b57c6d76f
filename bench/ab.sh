#!/usr/bin/env bash
# Two Warren binaries side by side on scenarios of bench/compare.sh (default 1, 2, 3 and 6): the check that a
# change does not slow the paths it does not use. Each run also reports the rate consumed while publishing and the
# broker's peak RSS during the run (perf --broker-pid). Every run has a fresh broker of its own, warmed up first;
# runs alternate which binary goes first, so neither always has the warmer machine. Prints one line per run and the
# median of each binary.
#
# Usage: bench/ab.sh BEFORE_BIN AFTER_BIN [--seconds S] [--runs N] [--scenarios 1,2,3,6]  (11: scenario 1 on a TTL queue, 12: on a priority queue, 13 and 14: scenarios 1 and 2 at a fixed 1,000,000 msg/s)
# Reports figures; asserts nothing about speed. Brokers are stopped by PID.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/brokers.sh"

(($# >= 2)) || { sed -n '8p' "$0" | sed 's/^# //' >&2; exit 2; }
BIN_BEFORE=$1 BIN_AFTER=$2; shift 2
SECONDS_PER_RUN=10 RUNS=3 SCENARIOS="1,2,3,6"
while (($#)); do
  case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    *) sed -n '8p' "$0" | sed 's/^# //' >&2; exit 2 ;;
  esac
done
source "$HERE/scenarios.sh"
for bin in "$BIN_BEFORE" "$BIN_AFTER"; do [[ -x "$bin" ]] || { echo "not an executable: $bin" >&2; exit 2; }; done

WORK=${BENCH_DIR:-/tmp/warren-ab}
rm -rf "$WORK"; mkdir -p "$WORK/logs"
RESULTS="$WORK/results.tsv"; : >"$RESULTS"
declare -A BIN=([before]=$BIN_BEFORE [after]=$BIN_AFTER)
PORT=5821 PID=""
cleanup() { [[ -n $PID ]] && stop_pid "$PID"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

perf() { # log options...
  local log=$1; shift
  local out
  out=$("${BIN[after]}" perf --uri "amqp://guest:guest@127.0.0.1:$PORT/%2f" --json --broker-pid "$PID" "$@" 2>"$WORK/logs/$log.err" | tail -1) || true
  [[ $out == "{"* ]] || out='{}'
  echo "$out"
}

# One run on a broker of its own, started fresh and warmed up, then stopped: a broker process kept for every run
# showed a lasting bias of its own (the same binary on both sides differed by up to 10 % at a fixed rate).
measure() { # side scenario run
  local b=$1 s=$2 run=$3 dir="$WORK/$1-s$2-r$3"
  WARREN_BIN=${BIN[$b]} start_warren "$PORT" "$dir" \
    || { echo "$b did not start; see $dir.log" >&2; exit 1; }
  PID=$WARREN_PID
  perf "warmup-$b-$s-$run" --size 16 --multi-ack-every 100 --qos 1000 --time 2 --queue ab-warmup >/dev/null
  # shellcheck disable=SC2046 # the options are words
  perf "s$s-$b-$run" $(scenario_options "$s" "$run-$b")
  stop_pid "$PID"; PID=""
  rm -rf "$dir"
}

IFS=, read -ra LIST <<<"$SCENARIOS"
for s in "${LIST[@]}"; do
  for ((run = 1; run <= RUNS; run++)); do
    if ((run % 2)); then order="before after"; else order="after before"; fi
    for b in $order; do
      line=$(measure "$b" "$s" "$run")
      printf '%s\t%s\t%s\t%s\n' "$s" "$b" "$run" "$line" >>"$RESULTS"
      echo "[$(date +%T)] scenario $s run $run $b: $line" | cut -c1-220 >&2
    done
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [l.rstrip("\n").split("\t", 3) for l in open(sys.argv[1])]
by = {}
for s, b, r, j in rows:
    by.setdefault((s, b), []).append(json.loads(j))
def fig(s, d):
    if not d:
        return "no result"
    if s == "6":
        lat = d.get("latency_us") or {}
        return f"p50 {lat.get('p50')} us, p99 {lat.get('p99')} us"
    lat = d.get("latency_us") or {}
    rss = d.get("broker_peak_rss_mib")
    return (f"{d.get('publish_rate', 0):,.0f} pub/s, {d.get('consume_rate', 0):,.0f} cons/s, "
            f"{d.get('consume_rate_window') or 0:,.0f} cons/s while publishing, p99 {lat.get('p99')} us, "
            f"RSS {rss} MiB, CPU {cpu_ns(d)} ns/msg")
def cpu_ns(d):
    cpu, n = d.get("broker_cpu_s"), d.get("received") or 0
    return f"{cpu * 1e9 / n:.0f}" if cpu is not None and n else "-"

def med(s, runs):
    if s == "6":
        p50 = statistics.median((d.get("latency_us") or {}).get("p50", 0) for d in runs)
        p99 = statistics.median((d.get("latency_us") or {}).get("p99", 0) for d in runs)
        return f"median p50 {p50} us, p99 {p99} us"
    cpus = [d["broker_cpu_s"] * 1e9 / d["received"] for d in runs if d.get("broker_cpu_s") is not None and d.get("received")]
    cpu = f", CPU {statistics.median(cpus):.0f} ns/msg" if cpus else ""
    return (f"median {statistics.median(d.get('consume_rate', 0) for d in runs):,.0f} cons/s, "
            f"{statistics.median(d.get('consume_rate_window') or 0 for d in runs):,.0f} while publishing{cpu}")
print("| scenario | binary | runs | median |")
print("|---|---|---|---|")
for (s, b), runs in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1] != "before")):
    print(f"| {s} | {b} | {'; '.join(fig(s, d) for d in runs)} | {med(s, runs)} |")
PY
