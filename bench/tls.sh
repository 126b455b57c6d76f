#!/usr/bin/env bash
# TLS throughput: scenario 1 (one producer, one autoack consumer, 16-byte messages) over plain TCP and over TLS, on
# Warren and on a private RabbitMQ in the same run. Certificates are made here with openssl, in the work directory,
# and deleted with it.
# Usage: bench/tls.sh [--seconds S] [--runs N]   (WARREN_BIN: the broker, default target/release/warren)
# Reports figures; asserts nothing about speed. Brokers are stopped by PID.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/brokers.sh"
SECONDS_PER_RUN=10 RUNS=1
while (($#)); do
  case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) sed -n '5p' "$0" | sed 's/^# //' >&2; exit 2 ;;
  esac
done
source "$HERE/scenarios.sh"

WORK=${BENCH_DIR:-/tmp/warren-tls-bench}
rm -rf "$WORK"; mkdir -p "$WORK/pki" "$WORK/logs"
PKI=$WORK/pki
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$PKI/ca.key" -out "$PKI/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$PKI/server.key" -out "$PKI/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$PKI/ext.cnf"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
  -extfile "$PKI/ext.cnf" -out "$PKI/server.pem" 2>/dev/null
chmod 644 "$PKI"/*

W_PLAIN=5831 W_TLS=5832 R_PLAIN=5833 R_TLS=5834
PID=""
cleanup() { [[ -n $PID ]] && stop_pid "$PID"; rm -rf "$PKI"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

perf() { # log uri options...
  local log=$1 uri=$2; shift 2
  local tls=()
  [[ $uri == amqps* ]] && tls=(--ca-cert "$PKI/ca.pem")
  local out
  out=$("$WARREN_BIN" perf --uri "$uri" "${tls[@]}" --json --broker-pid "$PID" "$@" 2>"$WORK/logs/$log.err" | tail -1) || true
  [[ $out == "{"* ]] || out='{}'
  echo "$out"
}

scenario1() { # log uri run
  # shellcheck disable=SC2046 # the options are words
  perf "$1" "$2" $(scenario_options 1 "$3")
}

RESULTS="$WORK/results.tsv"; : >"$RESULTS"
for ((run = 1; run <= RUNS; run++)); do
  cat >"$WORK/warren.toml" <<TOML
[listeners]
ssl = ["127.0.0.1:$W_TLS"]

[ssl_options]
certfile = "$PKI/server.pem"
keyfile = "$PKI/server.key"
TOML
  start_warren "$W_PLAIN" "$WORK/warren-$run" --config "$WORK/warren.toml" \
    || { echo "Warren did not start; see $WORK/warren-$run.log" >&2; exit 1; }
  PID=$WARREN_PID
  wait_port "$W_TLS" 30
  printf 'warren\ttcp\t%s\t%s\n' "$run" "$(scenario1 "w-tcp-$run" "amqp://guest:guest@127.0.0.1:$W_PLAIN/%2f" "w-tcp-$run")" >>"$RESULTS"
  printf 'warren\ttls\t%s\t%s\n' "$run" "$(scenario1 "w-tls-$run" "amqps://guest:guest@127.0.0.1:$W_TLS/%2f" "w-tls-$run")" >>"$RESULTS"
  stop_pid "$PID"; PID=""

  RABBITMQ_EXTRA_CONF="listeners.ssl.default = $R_TLS
ssl_options.certfile = $PKI/server.pem
ssl_options.keyfile = $PKI/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false" \
    start_rabbitmq "$R_PLAIN" "$WORK/rabbit-$run" \
    || { echo "RabbitMQ did not start; see $WORK/rabbit-$run.log" >&2; exit 1; }
  PID=$RABBIT_PID
  wait_port "$R_TLS" 60
  printf 'rabbitmq\ttcp\t%s\t%s\n' "$run" "$(scenario1 "r-tcp-$run" "amqp://guest:guest@127.0.0.1:$R_PLAIN/%2f" "r-tcp-$run")" >>"$RESULTS"
  printf 'rabbitmq\ttls\t%s\t%s\n' "$run" "$(scenario1 "r-tls-$run" "amqps://guest:guest@127.0.0.1:$R_TLS/%2f" "r-tls-$run")" >>"$RESULTS"
  stop_pid "$PID"; PID=""
done

python3 - "$RESULTS" <<'PY'
import json, sys
print("| broker | transport | run | publish msg/s | consume msg/s | p99 latency us | broker CPU ns/msg |")
print("|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    broker, transport, run, j = line.rstrip("\n").split("\t", 3)
    d = json.loads(j)
    cpu, n = d.get("broker_cpu_s"), d.get("received") or 0
    cpu = f"{cpu * 1e9 / n:.0f}" if cpu is not None and n else "-"
    lat = (d.get("latency_us") or {}).get("p99")
    print(f"| {broker} | {transport} | {run} | {d.get('publish_rate', 0):,.0f} | {d.get('consume_rate', 0):,.0f} | {lat} | {cpu} |")
PY
