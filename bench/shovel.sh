#!/usr/bin/env bash
# Messages per second moved by one shovel, Warren's shovel and RabbitMQ 3.10's shovel plugin on this machine in one
# run: for each broker (started alone, fresh data directory), fill a durable queue with M persistent 1 KiB messages
# (`warren perf`, confirms), set a dynamic shovel from it to another queue of the same broker through the management
# API (PUT /api/parameters/shovel/%2f/NAME; ack-mode on-confirm, src-prefetch-count 1000, URIs
# amqp://guest:guest@127.0.0.1:PORT/%2f), and time from the PUT until the destination holds M (polled every 50 ms
# with a passive queue.declare). Both are also measured with the hostless `amqp://` URI (RabbitMQ: its Erlang direct
# connection, no network; Warren: a loopback connection as its internal user) unless --no-direct.
#
#   bench/shovel.sh [--messages M] [--no-direct]
#
# M defaults to 200000 (SHOVEL_BENCH_MESSAGES). Needs the release build (cargo build --release -p warren --bin
# warren), rabbitmq-server (Debian's, with its shovel plugins), python3 with pika and curl. Brokers listen on
# loopback ports 5811-5813 (Warren: AMQP, management, Prometheus) and 5821-5822 (RabbitMQ: AMQP, management; its
# distribution port is 25821), data under BENCH_DIR (default /tmp/warren-bench-shovel), removed at exit.
# Prints a Markdown table: broker, messages, seconds, msg/s.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$HERE/brokers.sh"

M="${SHOVEL_BENCH_MESSAGES:-200000}"
direct=1
while (($#)); do
  case "$1" in
    --messages) M=$2; shift 2 ;;
    --no-direct) direct=0; shift ;;
    *) echo "usage: $0 [--messages M] [--no-direct]" >&2; exit 2 ;;
  esac
done
[[ -x "$WARREN_BIN" ]] || { echo "no release build at $WARREN_BIN (cargo build --release -p warren --bin warren)" >&2; exit 1; }

WORK=${BENCH_DIR:-/tmp/warren-bench-shovel}
mkdir -p "$WORK"; chmod 755 "$WORK"
WARREN_PORT=5811
RABBIT_PORT=5821
WARREN_PID="" RABBIT_PID=""
trap 'stop_pid "$WARREN_PID"; stop_pid "$RABBIT_PID"; rm -rf "$WORK"' EXIT
TOOL=(python3 -B "$ROOT/interop-tests/shovel/shovel_tool.py")
TIMEOUT=$((300 + M / 200))   # seconds a fill or a transfer may take

url() { echo "amqp://guest:guest@127.0.0.1:$1/%2f"; }

# measure LABEL AMQP_PORT MGMT_PORT SHOVEL_NAME SRC_URI DEST_URI: prints a table row.
measure() {
  local label=$1 port=$2 mport=$3 name=$4 src_uri=$5 dest_uri=$6 src="$4.src" dst="$4.dst" t0 t1 held
  timeout "$TIMEOUT" "$WARREN_BIN" perf --uri "$(url "$port")" --producers 1 --consumers 0 --size 1024 --persistent \
    --durable-queue --confirm 1000 --pmessages "$M" --queue "$src" >/dev/null 2>&1
  held=$("${TOOL[@]}" depth "$(url "$port")" "$src")
  [[ "$held" == "$M" ]] || { echo "$label: $src holds $held after the fill, not $M" >&2; return 1; }
  local value
  value=$(printf '{"value": {"src-uri": "%s", "src-queue": "%s", "dest-uri": "%s", "dest-queue": "%s", "ack-mode": "on-confirm", "src-prefetch-count": 1000}}' \
    "$src_uri" "$src" "$dest_uri" "$dst")
  t0=$(date +%s.%N)
  curl -sS --fail --max-time 30 -u guest:guest -H 'content-type: application/json' -X PUT --data-binary "$value" \
    "http://127.0.0.1:$mport/api/parameters/shovel/%2f/$name" >/dev/null
  held=$(timeout $((TIMEOUT + 10)) "${TOOL[@]}" wait "$(url "$port")" "$dst" "$M" --timeout "$TIMEOUT" 2>/dev/null) ||
    { echo "$label: $dst holds $held after ${TIMEOUT}s, not $M" >&2; return 1; }
  t1=$(date +%s.%N)
  curl -sS --max-time 30 -u guest:guest -X DELETE "http://127.0.0.1:$mport/api/parameters/shovel/%2f/$name" >/dev/null || true
  for q in "$src" "$dst"; do   # the next measurement starts from empty queues
    curl -sS --max-time 60 -u guest:guest -X DELETE "http://127.0.0.1:$mport/api/queues/%2f/$q" >/dev/null || true
  done
  python3 -c "import sys; s=float(sys.argv[2]) - float(sys.argv[1]); m=int(sys.argv[3]); print('| %s | %d | %.2f | %.0f |' % (sys.argv[4], m, s, m / s))" \
    "$t0" "$t1" "$M" "$label"
}

echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u +%Y-%m-%d)"
echo "One shovel, queue to queue on the same broker, $M persistent 1 KiB messages, ack-mode on-confirm, prefetch 1000"
echo
echo "| broker | messages | seconds | msg/s |"
echo "|---|---|---|---|"

start_warren "$WARREN_PORT" "$WORK/warren" --management-listen "127.0.0.1:$((WARREN_PORT + 1))" \
  --prometheus-listen "127.0.0.1:$((WARREN_PORT + 2))"
wait_port $((WARREN_PORT + 1)) 60
measure "Warren $("$WARREN_BIN" --version 2>/dev/null | awk '{print $2}') (sync=always)" "$WARREN_PORT" \
  $((WARREN_PORT + 1)) bench "$(url "$WARREN_PORT")" "$(url "$WARREN_PORT")"
if ((direct)); then
  measure "Warren (hostless amqp://)" "$WARREN_PORT" $((WARREN_PORT + 1)) direct "amqp://" "amqp://"
fi
stop_pid "$WARREN_PID"; WARREN_PID=""

export RABBITMQ_PLUGINS="rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management"
export RABBITMQ_EXTRA_CONF="management.tcp.port = $((RABBIT_PORT + 1))
management.tcp.ip = 127.0.0.1"
start_rabbitmq "$RABBIT_PORT" "$WORK/rabbit"
wait_port $((RABBIT_PORT + 1)) 60
version=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null | sed 's/-.*//')
measure "RabbitMQ $version (network URIs)" "$RABBIT_PORT" $((RABBIT_PORT + 1)) bench \
  "$(url "$RABBIT_PORT")" "$(url "$RABBIT_PORT")"
if ((direct)); then
  measure "RabbitMQ $version (direct amqp://)" "$RABBIT_PORT" $((RABBIT_PORT + 1)) direct "amqp://" "amqp://"
fi
