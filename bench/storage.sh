#!/usr/bin/env bash
# The durable-storage figures, Warren (sync = "always") and RabbitMQ 3.10 side by side in one run on this machine:
#   1. confirmed persistent 1 KiB publish throughput to a durable queue, confirm window 1000, a consumer acking,
#      with 1 and with 4 publishers;
#   2. a backlog of N (default 5 million) persistent 1 KiB messages published with no consumer, then drained:
#      time for each phase and the broker's peak RSS.
# Usage: bench/storage.sh [--backlog N] [--seconds S]. Needs rabbitmq-server (apt-get install rabbitmq-server) and
# the release build (cargo build --release). Prints a Markdown table.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/brokers.sh"

BACKLOG=5000000
SECONDS_PER_RUN=20
while (($#)); do
  case "$1" in
    --backlog) BACKLOG=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    *) echo "usage: $0 [--backlog N] [--seconds S]" >&2; exit 2 ;;
  esac
done

WORK=${BENCH_DIR:-/tmp/warren-bench}
mkdir -p "$WORK"
WARREN_PORT=5801
RABBIT_PORT=5802
WARREN_PID="" RABBIT_PID=""
trap 'stop_pid "$WARREN_PID"; stop_pid "$RABBIT_PID"' EXIT

perf() { "$WARREN_BIN" perf --json "$@" 2>/dev/null | tail -1; }
field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, d))" "$1" "$2"; }

throughput() { # port producers
  perf --uri "amqp://guest:guest@127.0.0.1:$1/%2f" --producers "$2" --consumers "$2" --size 1024 \
    --persistent --durable-queue --confirm 1000 --multi-ack-every 100 --qos 1000 --time "$SECONDS_PER_RUN" \
    --queue "tp-$2"
}

backlog() { # port pid -> "publish_s drain_s peak_mib"
  local port=$1 pid=$2 t0 t1 t2 out
  t0=$(date +%s.%N)
  out=$(perf --uri "amqp://guest:guest@127.0.0.1:$port/%2f" --producers 1 --consumers 0 --size 1024 --persistent \
    --durable-queue --confirm 1000 --pmessages "$BACKLOG" --queue backlog)
  t1=$(date +%s.%N)
  out2=$(perf --uri "amqp://guest:guest@127.0.0.1:$port/%2f" --producers 0 --consumers 1 --size 1024 --queue backlog \
    --durable-queue --predeclared --qos 1000 --multi-ack-every 100 --cmessages "$BACKLOG")
  t2=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc) $(field "$out2" "consume_time_s") $(peak_rss_mib "$pid") $(field "$out2" "received + stale")"
}

row() { printf '| %s | %s | %s |\n' "$@"; }

echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u +%Y-%m-%d)"
echo
start_warren "$WARREN_PORT" "$WORK/warren"
start_rabbitmq "$RABBIT_PORT" "$WORK/rabbit"
echo "| figure | Warren (sync=always) | RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) |"
echo "|---|---|---|"
for producers in 1 4; do
  w=$(throughput "$WARREN_PORT" "$producers"); r=$(throughput "$RABBIT_PORT" "$producers")
  row "confirmed persistent 1 KiB, $producers publisher(s), msg/s published" "$(field "$w" "round(publish_rate)")" "$(field "$r" "round(publish_rate)")"
  row "  confirm latency p50 / p99 (ms), $producers publisher(s)" "$(field "$w" "f'{confirm_latency_us[\"p50\"]/1000:.1f} / {confirm_latency_us[\"p99\"]/1000:.1f}'")" "$(field "$r" "f'{confirm_latency_us[\"p50\"]/1000:.1f} / {confirm_latency_us[\"p99\"]/1000:.1f}'")"
done
read -r wp wd wm wn < <(backlog "$WARREN_PORT" "$WARREN_PID")
read -r rp rd rm rn < <(backlog "$RABBIT_PORT" "$RABBIT_PID")
row "backlog of $BACKLOG x 1 KiB persistent: publish time (s)" "$wp" "$rp"
row "  drain time (s), messages received" "$wd, $wn" "$rd, $rn"
row "  broker peak RSS (MiB)" "$wm" "$rm"
