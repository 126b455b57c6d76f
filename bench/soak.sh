#!/usr/bin/env bash
# Runs `warren soak` against a fresh Warren or RabbitMQ started here (bench/brokers.sh), with the broker's pid so
# the report lines carry its RSS and open files. Human lines on the terminal, JSON lines in OUT_DIR/soak.jsonl.
#
#   bench/soak.sh [--broker warren|rabbitmq] [--out DIR] [-- warren soak options...]
#   bench/soak.sh --broker rabbitmq -- --time 600 --idle-connections 10000
#
# Without options after `--`, the soak takes its defaults (10 minutes, 10,000 idle connections). The broker and
# this script both need an open files limit above the idle connections (ulimit -n); the soak raises its own soft
# limit to the hard one and refuses to start if that is too low.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/brokers.sh

broker=warren
out=/tmp/warren-soak
while (($#)); do
  case $1 in
    --broker) broker=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1 (soak options go after --)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
[[ -x "$WARREN_BIN" ]] || cargo build --release -p warren

case $broker in
  warren) port=5821; start_warren "$port" "$out/warren"; pid=$WARREN_PID ;;
  rabbitmq) port=5822; start_rabbitmq "$port" "$out/rabbitmq"; pid=$RABBIT_PID ;;
  *) echo "--broker warren or rabbitmq" >&2; exit 2 ;;
esac
trap 'stop_pid "$pid"' EXIT
trap 'exit 130' INT TERM
# Another process on the port would take the connections while the broker started here has exited.
sleep 0.5
kill -0 "$pid" 2>/dev/null || { echo "$broker exited at start (port $port in use?): see $out/$broker.log" >&2; exit 2; }

echo "soak against $broker (pid $pid, port $port); JSON lines in $out/soak.jsonl, broker log in $out/$broker.log"
status=0
"$WARREN_BIN" soak --uri "amqp://guest:guest@127.0.0.1:$port/%2f" --broker-pid "$pid" --json "$@" \
  >"$out/soak.jsonl" || status=$?
exit "$status"
