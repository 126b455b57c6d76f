#!/usr/bin/env bash
# Captures a seed corpus from real traffic (docs/fuzzing.md, "The corpus"):
#   fuzz/capture.sh [OUT]      (default OUT: fuzz/corpus-capture; compare with fuzz/corpus, copy what you keep)
#   CAPTURE_SUITES="python go" fuzz/capture.sh ...   only these interop suites ("" for none: perf and the store only)
# It starts a Warren on a free loopback port with a fresh data directory, puts the corpus tool's recording proxy
# in front of it, and drives it with `warren perf` runs and with the interop suites of real client libraries
# (whichever have their prerequisites here: pika, bunny, php-amqplib, amqp-tools, amqplib, amqp091-go, the Java
# client). Each client family goes through its own proxy, so its inputs are named after it. What every client sent
# is cut into inputs of the frames, methods and content targets, and `select` keeps a few per method and per
# property-flags value, from as many clients as possible. Then the broker is killed with SIGKILL while a
# persistent publisher runs, and its store directory (WAL files and segments, a torn tail included) is packed into
# inputs of the store target. Loopback only; every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="$(realpath -m "${1:-fuzz/corpus-capture}")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build -p warren --bin warren -p warren-fuzz --bin warren-fuzz-corpus
BIN="$CARGO_TARGET_DIR/debug"
WORK="$(mktemp -d)"
broker=""
cleanup() { [[ -n "$broker" ]] && kill -9 "$broker" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BROKER_PORT="$(free_port)"
# 1 MiB WAL files (the smallest allowed) so that the persistent run below retires one into segments.
printf '[storage]\nwal_file_size = 1048576\nsegment_size = 1048576\n' > "$WORK/warren.toml"
"$BIN/warren" --listen "127.0.0.1:$BROKER_PORT" --data-dir "$WORK/data" --config "$WORK/warren.toml" \
  --log-level warn > "$WORK/broker.log" 2>&1 &
broker=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null && break; sleep 0.2; done

# through LABEL SECONDS COMMAND...: runs COMMAND with AMQP_URL and $URL pointing at a fresh recording proxy.
through() {
  local label="$1" seconds="$2"; shift 2
  local port; port="$(free_port)"
  "$BIN/warren-fuzz-corpus" proxy "127.0.0.1:$port" "127.0.0.1:$BROKER_PORT" "$WORK/raw" "$label" "$seconds" &
  local proxy=$!
  sleep 0.3
  URL="amqp://guest:guest@127.0.0.1:$port/%2f" AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f" \
    timeout "$seconds" "$@" > "$WORK/$label.log" 2>&1 || echo "capture: $label ended with status $? (kept what it sent)"
  wait "$proxy"
}
perf() { "$BIN/warren" perf --uri "$URL" "$@"; }
export -f perf; export BIN

# perf's own loss check may fail on a loaded machine; what matters here is what the clients sent.
through perf 30 bash -c 'perf --time 2 --size 64 --confirm 100 --qos 50 --multi-ack-every 10;
  perf --time 1 --queues 3 --producers 2 --size 300;
  perf --time 1 --queue-args x-max-length=100000,x-message-ttl=60000 --queue fuzz-args --autoack;
  perf --time 1 --exchange fuzz-topic --exchange-type topic --routing-key a.b.c --shared-connection --size 2000'
for suite in ${CAPTURE_SUITES-python ruby php c python-more node go java}; do
  through "$suite" 180 bash -c 'interop-tests/run --broker-url "$URL" "$0"' "$suite"
done

# The store: persistent messages to a durable queue without consumers (a WAL file retired into its segments), to a
# second one with a consumer, then SIGKILL in the middle of a third run whose consumer acks as it goes (so the WAL's
# tail holds publishes and acks).
through perf-store 60 bash -c 'perf --pmessages 2500 --size 512 --persistent --durable-queue --queue fuzz-durable-a --consumers 0 --confirm 200 &&
  perf --pmessages 300 --size 100 --persistent --durable-queue --queue fuzz-durable-b --confirm 50 --qos 10'
port="$(free_port)"
"$BIN/warren" perf --uri "amqp://guest:guest@127.0.0.1:$BROKER_PORT/%2f" --time 20 --size 700 --persistent \
  --durable-queue --queue fuzz-durable-c --qos 20 --confirm 20 > "$WORK/kill9.log" 2>&1 &
sleep 2
kill -9 "$broker"; broker=""
wait || true
# Flags (crates/warren-fuzz/src/store.rs): 1 recompute CRCs (mutations then reach the record decoders), 2 retire and
# compact before closing, 4 small files.
for flags in 0 1 6 7; do
  "$BIN/warren-fuzz-corpus" pack-store "$WORK/data/msgs" "$WORK/raw/store/perf-kill9-flags$flags" "$flags"
done
"$BIN/warren-fuzz-corpus" select "$WORK/raw" "$OUT"
echo "capture: $(find "$OUT" -type f | wc -l) inputs, $(du -sh "$OUT" | cut -f1), under $OUT"
