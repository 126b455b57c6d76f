#!/usr/bin/env bash
# The memory alarm under a flat-out publisher, Warren against RabbitMQ 3.10 in one run: each broker gets the same
# absolute memory high watermark; one producer publishes 1 KiB messages (transient, then persistent to a durable
# queue) as fast as it can to a queue without consumers. Reported per broker and run: peak RSS against the
# watermark, seconds from the start until the alarm went off (from the broker's log), whether publishers were
# unblocked, and RSS 10 s after the queue was deleted.
#
# Usage: bench/alarms.sh [--watermark-mib N] [--seconds S] [--brokers "warren rabbitmq"] [--kinds "transient persistent"]
# Needs the release build, rabbitmq-server, python3 with pika. Reports figures; asserts nothing. Brokers are stopped
# by PID.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/brokers.sh"
WATERMARK_MIB=512 RUN_SECONDS=30 BROKERS="warren rabbitmq" KINDS="transient persistent"
while (($#)); do
  case "$1" in
    --watermark-mib) WATERMARK_MIB=$2; shift 2 ;;
    --seconds) RUN_SECONDS=$2; shift 2 ;;
    --brokers) BROKERS=$2; shift 2 ;;
    --kinds) KINDS=$2; shift 2 ;;
    *) sed -n '7p' "$0" >&2; exit 2 ;;
  esac
done
WORK=${BENCH_DIR:-/tmp/warren-alarms}
rm -rf "$WORK"; mkdir -p "$WORK"
PID=""
trap 'stop_pid "$PID"' EXIT

# Polls RSS of $1 every 100 ms while $2 (a pid) runs; prints the peak in MiB.
watch_rss() {
  local pid=$1 while_pid=$2 peak=0 now
  while kill -0 "$while_pid" 2>/dev/null; do
    now=$(current_rss_kib "$pid" 2>/dev/null || echo 0)
    ((now > peak)) && peak=$now
    sleep 0.1
  done
  echo $((peak / 1024))
}

# Seconds from epoch $2 to the first line of log $1 matching "memory resource limit alarm set".
alarm_after() {
  python3 - "$1" "$2" <<'PY'
import re, sys, datetime
log, start = sys.argv[1], float(sys.argv[2])
for line in open(log, errors="replace"):
    if "memory resource limit alarm set" in line:
        m = re.search(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d(?:\.\d+)?)", line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1) + " " + m.group(2)).replace(tzinfo=datetime.timezone.utc)
            print(f"{t.timestamp() - start:.1f}")
            sys.exit()
print("never")
PY
}

delete_queue() { # port queue
  python3 - "$1" "$2" <<'PY'
import sys, pika
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1])))
conn.channel().queue_delete(sys.argv[2])
conn.close()
PY
}

printf '| broker | messages | peak RSS MiB | watermark MiB | alarm after s | cleared after delete | RSS 10 s after delete MiB |\n|---|---|---|---|---|---|---|\n' >"$WORK/table.md"
for kind in $KINDS; do
  for broker in $BROKERS; do
    dir="$WORK/$broker-$kind" port=5841
    if [[ $broker == warren ]]; then
      printf '[alarms]\nvm_memory_high_watermark.absolute = "%sMiB"\n' "$WATERMARK_MIB" >"$dir.toml"
      start_warren "$port" "$dir" --config "$dir.toml"
      PID=$WARREN_PID log="$dir.log"
    else
      RABBITMQ_EXTRA_CONF="vm_memory_high_watermark.absolute = ${WATERMARK_MIB}MiB" start_rabbitmq "$port" "$dir"
      PID=$RABBIT_PID log=$(ls "$dir"/log/*.log | head -1)
    fi
    flags="--producers 1 --consumers 0 --size 1024 --time $RUN_SECONDS --queue alarm-q"
    [[ $kind == persistent ]] && flags="$flags --persistent --durable-queue"
    start=$(date +%s.%N)
    "$WARREN_BIN" perf --uri "amqp://guest:guest@127.0.0.1:$port/%2f" $flags >"$dir.perf" 2>&1 &
    perf_pid=$!
    peak=$(watch_rss "$PID" "$perf_pid")
    wait "$perf_pid" || true
    after=$(alarm_after "$log" "$start")
    delete_queue "$port" alarm-q || true
    sleep 10
    # Cleared after the delete: the last alarm line of the log is a clear (the alarm may flap before).
    cleared=$(grep -E "memory resource limit alarm (set|cleared)" "$log" | tail -1 | grep -c cleared || true)
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$broker" "$kind" "$peak" "$WATERMARK_MIB" "$after" \
      "$([[ $cleared -gt 0 ]] && echo yes || echo no)" "$(current_rss_mib "$PID")" | tee -a "$WORK/table.md"
    stop_pid "$PID"; PID=""
  done
done
echo; cat "$WORK/table.md"
