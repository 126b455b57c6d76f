#!/usr/bin/env bash
# 10,000 queues listed through the management API: whole, a page of 100, a name-filtered page (curl timings). Usage:
# bench/list_queues.sh WARREN_BIN. Needs python3-pika. Reports figures; asserts nothing. The broker is stopped by PID.
set -euo pipefail
BIN=$1
DIR=$(mktemp -d /tmp/warren-q10k.XXXXXX)
"$BIN" --listen 127.0.0.1:5931 --management-listen 127.0.0.1:15931 --prometheus-listen 127.0.0.1:15932 --data-dir "$DIR/data" > "$DIR/log" 2>&1 &
PID=$!
trap 'kill $PID; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
sleep 1
python3 - <<'PY'
import pika
c = pika.BlockingConnection(pika.ConnectionParameters(host="127.0.0.1", port=5931))
ch = c.channel()
for i in range(10000):
    ch.queue_declare(queue=f"q-{i:05d}")
c.close()
PY
for path in "queues" "queues?page=1&page_size=100" "queues?page=1&page_size=100&name=q-0999"; do
  for run in 1 2 3; do
    curl -s -o /dev/null -u guest:guest -w "$path run $run: %{time_total} s, %{size_download} bytes\n" "http://127.0.0.1:15931/api/$path"
  done
done
