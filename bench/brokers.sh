# Starting and stopping the brokers the benchmarks compare, each on its own ports with its own data directory.
# Source it from a bench script; every function prints nothing but errors. Brokers are stopped by PID.

WARREN_BIN="${WARREN_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/warren}"

wait_port() { # port, seconds
  local port=$1 deadline=$((SECONDS + ${2:-60}))
  while ((SECONDS < deadline)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing listening on port $port after ${2:-60}s" >&2
  return 1
}

# start_warren PORT DATA_DIR [extra args...]; sets WARREN_PID
start_warren() {
  local port=$1 dir=$2; shift 2
  rm -rf "$dir"; mkdir -p "$dir"
  "$WARREN_BIN" --listen "127.0.0.1:$port" --data-dir "$dir" --log-level warn "$@" >"$dir.log" 2>&1 &
  WARREN_PID=$!
  wait_port "$port" 60
}

# start_rabbitmq PORT DATA_DIR; sets RABBIT_PID (the beam.smp process, whose memory is the broker's).
# RABBITMQ_EXTRA_CONF, if set, is written as its rabbitmq.conf (e.g. a memory watermark); RABBITMQ_PLUGINS, if set,
# names the plugins to enable, comma-separated (e.g. rabbitmq_event_exchange); none by default.
start_rabbitmq() {
  local port=$1 dir=$2
  local node="bench$port@localhost"
  rm -rf "$dir"; mkdir -p "$dir/mnesia" "$dir/log"
  if [[ -n "${RABBITMQ_PLUGINS:-}" ]]; then
    printf '[%s].\n' "$RABBITMQ_PLUGINS" >"$dir/enabled_plugins"
  else
    : >"$dir/enabled_plugins"
  fi
  printf '%s\n' "${RABBITMQ_EXTRA_CONF:-}" >"$dir/rabbitmq.conf"
  # Debian's rabbitmq-server drops root privileges to the rabbitmq user, which must own its directories.
  if id rabbitmq >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then chown -R rabbitmq:rabbitmq "$dir"; fi
  RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$((port + 20000)) RABBITMQ_NODENAME=$node \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_PID_FILE="$dir/pid" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    setsid rabbitmq-server >"$dir.log" 2>&1 &
  wait_port "$port" 120
  # RabbitMQ writes the OS pid of its beam.smp process to RABBITMQ_PID_FILE once it has booted.
  for _ in $(seq 100); do [[ -s "$dir/pid" ]] && break; sleep 0.2; done
  RABBIT_PID=$(cat "$dir/pid" 2>/dev/null || true)
  [[ -n "$RABBIT_PID" ]] || { echo "RabbitMQ wrote no pid file in $dir" >&2; return 1; }
}

# start_garagemq PORT DATA_DIR; sets GARAGE_PID. garagemq (Debian's package, a Go broker) takes everything from a
# YAML file: written here as the package's /etc/garagemq/config.yaml with this port, the admin HTTP API on
# PORT + 10000, the database under DATA_DIR, and tcp.nodelay true (the package ships false; Warren and RabbitMQ set
# TCP_NODELAY, and without it small messages wait on delayed ACKs for ~40 ms).
start_garagemq() {
  local port=$1 dir=$2
  rm -rf "$dir"; mkdir -p "$dir"
  cat >"$dir.yaml" <<EOF
proto: amqp-rabbit
users:
  - username: guest
    password: 084e0343a0486ff05530df6c705c8bb4 # guest md5
tcp:
  ip: 127.0.0.1
  port: $port
  nodelay: true
  readBufSize: 196608
  writeBufSize: 196608
admin:
  ip: 127.0.0.1
  port: $((port + 10000))
queue:
  shardSize: 8192
  maxMessagesInRam: 131072
db:
  defaultPath: $dir/db
  engine: badger
vhost:
  defaultPath: /
security:
  passwordCheck: md5
connection:
  channelsMax: 4096
  frameMaxSize: 65536
EOF
  garagemq --config "$dir.yaml" --log-level warning >"$dir.log" 2>&1 &
  GARAGE_PID=$!
  wait_port "$port" 60
}

stop_pid() { # pid
  local pid=$1
  [[ -n "$pid" ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

# Peak resident memory of a process so far, in MiB (the kernel's VmHWM).
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
current_rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
current_rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
