# Sourced by interop-tests/shovel-rabbitmq and interop-tests/federation-rabbitmq: a release Warren (W1, and W2 on
# demand) and a private RabbitMQ 3.10 node (Debian's rabbitmq-server with the plugins in PAIR_PLUGINS and
# rabbitmq_management, on its own ports and data directory, stopped by PID), the pika steps of shovel_tool.py, and
# the PASS/FAIL/SKIP bookkeeping. The caller sets HERE, ROOT, PAIR_NAME, PAIR_PLUGINS, checks, build, keep, N and T,
# then calls pair_start, runs its checks with run_check, and ends with pair_finish.
source "$ROOT/bench/brokers.sh"

TOOL=(python3 -B "$HERE/shovel/shovel_tool.py")
passed=0 failed=0 skipped=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() { echo "SKIP $*"; skipped=$((skipped + 1)); }
summary() { echo "interop-summary: passed=$passed failed=$failed skipped=$skipped"; }
note() { echo "   $*" >&2; }   # progress, on stderr: stdout has one line per check

# pair_start: builds (unless --no-build), then starts W1 and RabbitMQ; exits when a broker does not start. Without
# rabbitmq-server or pika every check is skipped and the script ends here.
pair_start() {
  if ! command -v rabbitmq-server >/dev/null || ! python3 -c 'import pika' 2>/dev/null; then
    for c in "${checks[@]}"; do skip "$c) needs rabbitmq-server and python3 with pika"; done
    summary; exit 0
  fi

  if ((build)); then (cd "$ROOT" && cargo build --release -p warren --bin warren </dev/null); fi
  bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/warren"
  [[ -x "$bin" ]] || { echo "no binary at $bin" >&2; exit 1; }
  work="$(mktemp -d "${TMPDIR:-/tmp}/warren-$PAIR_NAME.XXXXXX")"
  chmod 755 "$work"   # RabbitMQ runs as the rabbitmq user and must reach its directory inside
  trap pair_cleanup EXIT
  trap 'exit 130' INT TERM
  pair_ports
  echo "== Warren $bin: W1 on 127.0.0.1:$W1_PORT (management $((W1_PORT + 1))), W2 on $W2_PORT (management $((W2_PORT + 1)))"
  launch_warren 1 || { tail -n 30 "$work/w1.log" >&2; exit 1; }
  echo "== RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) on 127.0.0.1:$R_PORT," \
    "management on $((R_PORT + 1)); $N messages per transfer, waits bounded at ${T}s"
  export RABBITMQ_PLUGINS="rabbitmq_management,$PAIR_PLUGINS"
  export RABBITMQ_EXTRA_CONF="management.tcp.port = $((R_PORT + 1))"$'\n'"management.tcp.ip = 127.0.0.1"
  R_LAUNCHING=1
  start_rabbitmq "$R_PORT" "$R_DIR" || { tail -n 30 "$R_DIR.log" >&2; exit 1; }
  R_LAUNCHING=0
  wait_port $((R_PORT + 1)) 60 || { tail -n 30 "$R_DIR.log" >&2; exit 1; }
}

RABBIT_PID="" W1_PID="" W2_PID="" R_LAUNCHING=0
# pair_cleanup (on exit): everything started is stopped by PID, and the temporary directory removed unless --keep.
pair_cleanup() {
  stop_pid "$W1_PID"; stop_pid "$W2_PID"
  # Interrupted while RabbitMQ boots: its pid is known once it wrote its pid file (bounded wait).
  if ((R_LAUNCHING)) && ! { [[ -n "$RABBIT_PID" ]] && kill -0 "$RABBIT_PID" 2>/dev/null; }; then
    for _ in $(seq 300); do [[ -s "$R_DIR/pid" ]] && break; sleep 0.2; done
    RABBIT_PID=$(cat "$R_DIR/pid" 2>/dev/null || true)
  fi
  stop_pid "$RABBIT_PID"
  if ((keep)); then echo "kept $work" >&2; else rm -rf "$work"; fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A port free with the next two (management, Prometheus) and port + 20000 (RabbitMQ's distribution port): 20000-40000.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    port_in_use "$p" || port_in_use $((p + 1)) || port_in_use $((p + 2)) || port_in_use $((p + 20000)) || break
  done
  echo "$p"
}

# pair_ports: free ports for W1, W2 and RabbitMQ, their AMQP URLs and management API bases.
pair_ports() {
  W1_PORT=$(free_port)
  W2_PORT=$(free_port)
  while ((W2_PORT >= W1_PORT - 2 && W2_PORT <= W1_PORT + 2)); do W2_PORT=$(free_port); done
  R_PORT=$(free_port)
  while ((R_PORT >= W1_PORT - 2 && R_PORT <= W1_PORT + 2 || R_PORT >= W2_PORT - 2 && R_PORT <= W2_PORT + 2)); do
    R_PORT=$(free_port)
  done
  R_DIR="$work/rabbit"
  R_NODE="bench$R_PORT@localhost"
  url() { echo "amqp://guest:guest@127.0.0.1:$1/%2f"; }
  W1_URL=$(url "$W1_PORT") W2_URL=$(url "$W2_PORT") R_URL=$(url "$R_PORT")
  W1_API="http://127.0.0.1:$((W1_PORT + 1))" W2_API="http://127.0.0.1:$((W2_PORT + 1))"
  R_API="http://127.0.0.1:$((R_PORT + 1))"
}

# launch_warren 1|2: starts W1 or W2 on its data directory (kept between starts); sets W1_PID or W2_PID.
launch_warren() {
  local n=$1 port pid
  port=$([[ $n == 1 ]] && echo "$W1_PORT" || echo "$W2_PORT")
  mkdir -p "$work/w$n"
  NO_COLOR=1 "$bin" --listen "127.0.0.1:$port" --data-dir "$work/w$n" --log-level info \
    --management-listen "127.0.0.1:$((port + 1))" --prometheus-listen "127.0.0.1:$((port + 2))" \
    >>"$work/w$n.log" 2>&1 &
  pid=$!
  if [[ $n == 1 ]]; then W1_PID=$pid; else W2_PID=$pid; fi
  wait_port "$port" 120 && wait_port $((port + 1)) 60
}

kill9() { # pid: kill -9 and reap (quietly: a Warren is this shell's job, RabbitMQ is not)
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
}

# RabbitMQ on its data directory as start_rabbitmq (bench/brokers.sh) left it, without wiping it: after a kill -9.
restart_rabbitmq() {
  rm -f "$R_DIR/pid"
  RABBIT_PID="" R_LAUNCHING=1
  RABBITMQ_NODE_PORT=$R_PORT RABBITMQ_DIST_PORT=$((R_PORT + 20000)) RABBITMQ_NODENAME=$R_NODE \
    RABBITMQ_MNESIA_BASE="$R_DIR/mnesia" RABBITMQ_LOG_BASE="$R_DIR/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$R_DIR/enabled_plugins" RABBITMQ_PID_FILE="$R_DIR/pid" \
    RABBITMQ_CONFIG_FILE="$R_DIR/rabbitmq.conf" \
    setsid rabbitmq-server >>"$R_DIR.log" 2>&1 &
  wait_port "$R_PORT" 180 || return 1
  for _ in $(seq 100); do [[ -s "$R_DIR/pid" ]] && break; sleep 0.2; done
  RABBIT_PID=$(cat "$R_DIR/pid" 2>/dev/null || true)
  [[ -n "$RABBIT_PID" ]] && R_LAUNCHING=0 && wait_port $((R_PORT + 1)) 60
}

# --- helpers ------------------------------------------------------------------------------------------------------

# api METHOD URL [JSON]: prints the body; fails on a status >= 400 (printing it to stderr).
api() {
  local method=$1 target=$2 data=${3:-} out code
  out="$work/http.out"
  code=$(curl -sS --max-time 30 -u guest:guest -H 'content-type: application/json' -X "$method" \
    ${data:+--data-binary "$data"} -o "$out" -w '%{http_code}' "$target") || { echo "curl $method $target failed" >&2; return 1; }
  if ((code >= 400)); then echo "$method $target: HTTP $code $(head -c 500 "$out")" >&2; return 1; fi
  cat "$out"
}

# jq_py EXPR: evaluates a python expression over the JSON on stdin, bound to d.
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# publish URL QUEUE PREFIX [--topic-key KEY]: N persistent messages, confirmed (to a topic exchange with a key).
publish() { timeout $((T + 30)) "${TOOL[@]}" publish "$1" "$2" "$N" "$3" --timeout "$T" "${@:4}"; }
wait_depth() { timeout $((T + 30)) "${TOOL[@]}" wait "$1" "$2" "$3" --timeout "$T" 2>/dev/null; }
depth() { timeout 30 "${TOOL[@]}" depth "$1" "$2" 2>/dev/null; }
drain() { timeout $((T + 60)) "${TOOL[@]}" drain "$1" "$2" "$N" "$3" --timeout "$T" --settle 3; }

# judge CHECK DESCRIPTION DRAIN_JSON [EXTRA]: PASS when nothing is missing, foreign or non-persistent.
judge() {
  local check=$1 what=$2 result=$3 extra=${4:-} figures ok
  figures=$(jq_py "'expected=%(expected)d received=%(received)d missing=%(missing)d duplicates=%(duplicates)d foreign=%(foreign)d non_persistent=%(non_persistent)d' % d" <<<"$result")
  ok=$(jq_py "d['missing'] == 0 and d['foreign'] == 0 and d['non_persistent'] == 0 and 'error' not in d" <<<"$result")
  if [[ $ok == True ]]; then
    pass "$check) $what: $figures${extra:+ ($extra)}"
  else
    fail "$check) $what: $figures${extra:+ ($extra)} $(jq_py "d.get('error', '')" <<<"$result")"
  fi
}

# run_check CHECK FUNCTION: runs it in a subshell-free way, turning an unexpected failure into a FAIL line.
run_check() {
  local c=$1 f=$2
  if ! "$f"; then fail "$c) aborted (see the messages above)"; fi
}

# pair_finish: a FAIL for a Warren that panicked, the summary line, and the exit status.
pair_finish() {
  for n in 1 2; do
    if [[ -f "$work/w$n.log" ]] && grep -q panicked "$work/w$n.log"; then
      fail "W$n panicked: $(grep -m1 -A2 panicked "$work/w$n.log" | tr '\n' ' ')"
    fi
  done
  summary
  ((failed == 0))
}
