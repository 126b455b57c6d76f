#!/usr/bin/env bash
# Replicated quorum queues against the alternatives on this machine, in one run, alternating, each measured --runs
# times with the same `warren perf` load (1 producer, 1 consumer, 1 KiB persistent, confirm window 1000, manual acks
# with multi-ack 100, prefetch 1000, --seconds of publishing):
#   a) a Warren cluster of 3 nodes, a quorum queue replicated on all three (publisher and consumer on one node)
#   b) a single Warren node, a durable classic queue (sync = "always": fsync before confirm)
#   c) RabbitMQ 3.10, one node, a quorum queue
#   d) the same Warren cluster, a durable classic queue declared on n1 (its home), publisher and consumer on n2: every
#      publish, delivery and ack crosses to the home node through n2's proxy
# then the failover of (a): a steady 1,000 msg/s stream through a node that does not lead the queue while the
# queue's leader is killed (-9); the longest a message waited is the time to elect a new leader and resume.
#
# With --queues Q (default 1), each publish goes through a fanout exchange to Q queues (one consumer each): Q queue
# groups appending at once, which share their fsyncs through the node's shared Raft log. --cluster-only skips (b),
# (c) and the failover (to compare two builds: WARREN_BIN=... bench/quorum.sh --cluster-only).
#
# Usage: bench/quorum.sh [--seconds S] [--runs N] [--queues Q] [--cluster-only] [--failover-only]
# Needs the release build (cargo build --release) and rabbitmq-server. Reports figures; asserts nothing about speed.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/brokers.sh"

SECONDS_PER_RUN=15 RUNS=2 QUEUES=1 CLUSTER_ONLY=0
while (($#)); do
  case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --queues) QUEUES=$2; shift 2 ;;
    --cluster-only) CLUSTER_ONLY=1; shift ;;
    --failover-only) RUNS=0; shift ;;
    *) sed -n '15p' "$0" | sed 's/^# //' >&2; exit 2 ;;
  esac
done
[[ -x "$WARREN_BIN" ]] || { echo "no release build at $WARREN_BIN: cargo build --release" >&2; exit 2; }
command -v rabbitmq-server >/dev/null || { echo "rabbitmq-server is not installed" >&2; exit 2; }

WORK=${BENCH_DIR:-/tmp/warren-quorum-bench}
rm -rf "$WORK"; mkdir -p "$WORK"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do stop_pid "$pid"; done; }
trap cleanup EXIT

LOAD=(-x 1 -s 1024 -f -c 1000 -A 100 -q 1000 --durable-queue --json -z "$SECONDS_PER_RUN")
if ((QUEUES > 1)); then LOAD+=(--queues "$QUEUES"); else LOAD+=(-y 1); fi

# Three Warren nodes: AMQP on 5811-5813, management on 15811-15813, inter-node on 25811-25813.
start_cluster() {
  PIDS=()
  for i in 1 2 3; do
    local peers=()
    for j in 1 2 3; do ((j == i)) || peers+=("\"n$j@127.0.0.1:2581$j\""); done
    local dir="$WORK/n$i"
    rm -rf "$dir"; mkdir -p "$dir"
    printf '[cluster]\nname = "n%s"\nlisten = "127.0.0.1:2581%s"\npeers = [%s]\nsecret = "bench secret"\n' \
      "$i" "$i" "$(IFS=,; echo "${peers[*]}")" >"$dir.toml"
    "$WARREN_BIN" --listen "127.0.0.1:581$i" --management-listen "127.0.0.1:1581$i" \
      --prometheus-listen "127.0.0.1:1591$i" --data-dir "$dir" --config "$dir.toml" --log-level warn \
      >"$dir.log" 2>&1 &
    PIDS+=($!)
  done
  for i in 1 2 3; do wait_port "581$i" 60; done
  for _ in $(seq 100); do
    curl -sf -u guest:guest http://127.0.0.1:15811/api/cluster-status | grep -q '"leader":"n' && return 0
    sleep 0.2
  done
  echo "the cluster elected no leader" >&2; return 1
}

# consumed msg/s while publishing, confirm latency p50/p99 (ms)
rate() {
  python3 -c 'import json,sys; d=json.loads(sys.stdin.readlines()[-1]); c=d["confirm_latency_us"]
print("%8.0f msg/s  confirm p50 %6.2f ms  p99 %6.2f ms" % (d["consume_rate_window"] or d["consume_rate"], c["p50"]/1000, c["p99"]/1000))'
}

run_cluster() {
  start_cluster
  "$WARREN_BIN" perf --uri amqp://guest:guest@127.0.0.1:5811/%2f -u qq --queue-args x-queue-type=quorum \
    "${LOAD[@]}" 2>"$WORK/perf-cluster.err" | rate
  cleanup; PIDS=()
}

run_single() {
  printf '[storage]\nsync = "always"\n' >"$WORK/single.toml"
  start_warren 5821 "$WORK/single" --config "$WORK/single.toml"
  PIDS=("$WARREN_PID")
  "$WARREN_BIN" perf --uri amqp://guest:guest@127.0.0.1:5821/%2f -u dq "${LOAD[@]}" 2>"$WORK/perf-single.err" | rate
  cleanup; PIDS=()
}

run_remote_classic() {
  start_cluster
  python3 -c "import pika; c = pika.BlockingConnection(pika.URLParameters('amqp://guest:guest@127.0.0.1:5811/%2f'))
c.channel().queue_declare('cq', durable=True); c.close()"
  "$WARREN_BIN" perf --uri amqp://guest:guest@127.0.0.1:5812/%2f -u cq "${LOAD[@]}" 2>"$WORK/perf-remote.err" | rate
  cleanup; PIDS=()
}

run_rabbitmq() {
  start_rabbitmq 5831 "$WORK/rabbit"
  PIDS=("$RABBIT_PID")
  "$WARREN_BIN" perf --uri amqp://guest:guest@127.0.0.1:5831/%2f -u qq --queue-args x-queue-type=quorum \
    "${LOAD[@]}" 2>"$WORK/perf-rabbit.err" | rate
  cleanup; PIDS=()
}

echo "# consumed while publishing (all queues), and confirm latency; 1 KiB persistent, confirm window 1000, manual acks; $QUEUES queue(s)"
for run in $(seq "$RUNS"); do
  echo "run $run: warren 3-node quorum queue:   $(run_cluster)"
  ((CLUSTER_ONLY)) && continue
  echo "run $run: warren 1-node durable queue:  $(run_single)"
  echo "run $run: rabbitmq 3.10 quorum queue:  $(run_rabbitmq)"
  echo "run $run: warren classic queue on n1, clients on n2: $(run_remote_classic)"
done
((CLUSTER_ONLY)) && exit 0

# Failover: the queue declared first, so that the clients can use a node that does not lead it; deliveries at
# 1,000 msg/s through that node while the leader is killed.
start_cluster
python3 -c "import pika; c = pika.BlockingConnection(pika.URLParameters('amqp://guest:guest@127.0.0.1:5811/%2f'))
c.channel().queue_declare('failover', durable=True, arguments={'x-queue-type': 'quorum'}); c.close()"
LEADER=None
for _ in $(seq 100); do   # until its group has elected a leader
  LEADER=$(curl -sf -u guest:guest http://127.0.0.1:15811/api/queues/%2f/failover | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
  [[ "$LEADER" == n* ]] && break
  sleep 0.2
done
[[ "$LEADER" == n* ]] || { echo "no leader for the failover queue" >&2; exit 1; }
VICTIM=${LEADER#n}
CLIENT=$((VICTIM % 3 + 1))
"$WARREN_BIN" perf --uri "amqp://guest:guest@127.0.0.1:581$CLIENT/%2f" -u failover --queue-args x-queue-type=quorum \
  -x 1 -y 1 -s 1024 -f -c 100 -q 100 --durable-queue -r 1000 -z 20 --json >"$WORK/failover.json" \
  2>"$WORK/failover.err" &
PERF=$!
sleep 8
KILLED_AT=$(date +%s.%N)
kill -9 "${PIDS[$((VICTIM - 1))]}"
wait "$PERF" || true
echo "failover: clients on n$CLIENT, killed the leader n$VICTIM at $KILLED_AT"
python3 - "$WORK/failover.json" "$WORK/failover.err" <<'EOF'
import json, sys
summary = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
lat = summary["latency_us"]
print("failover run: sent %s, confirmed %s, nacked %s, received %s, missing %s, duplicates %s; end-to-end "
      "latency p50 %.1f ms, max %.1f ms (the longest a message waited: the failover)" % (
    summary["sent"], summary["confirmed"], summary["nacked"], summary["received"], summary.get("missing"),
    summary.get("duplicates"), lat["p50"] / 1000, lat["max"] / 1000))
EOF
