#!/usr/bin/env bash
# The distributed deployment's servers on this machine, without Docker:
#   PostgreSQL and Redis from Debian's packages, Apache Kafka (KRaft, one broker+controller) from
#   its jars on Maven Central run with the machine's Java 17, and an MLflow tracking server.
# Usage: bash scripts/stack.sh up|down|status [postgres|redis|kafka|mlflow ...]   (default: all)
# Loopback only, the usual ports (PostgreSQL 5432, Redis 6379, Kafka 9092, MLflow 5000).
# State lives in $DRL_STACK_DIR (default ~/.cache/drl-trading/stack); `down` keeps it.
# Installing packages needs root (or password-less sudo) the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
STATE="${DRL_STACK_DIR:-$HOME/.cache/drl-trading/stack}"
CACHE="${DRL_STACK_CACHE:-$HOME/.cache/drl-trading}"
PG_USER="${DRL_PG_USER:-drl}"
PG_PASSWORD="${DRL_PG_PASSWORD:-drl}"
PG_DB="${DRL_PG_DB:-drl}"
KAFKA_PORT="${DRL_KAFKA_PORT:-9092}"
REDIS_PORT="${DRL_REDIS_PORT:-6379}"
MLFLOW_PORT="${DRL_MLFLOW_PORT:-5000}"
mkdir -p "$STATE" "$CACHE"

log() { echo "[stack] $*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # name port seconds
  local i
  for ((i = 0; i < $3 * 5; i++)); do port_open "$2" && return 0; sleep 0.2; done
  log "$1 did not open port $2 within $3 s"; return 1
}
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else log "needs root to run: $*"; return 1; fi
}
apt_install() {
  log "installing $* (Debian packages)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
  }
}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi; }

# -- PostgreSQL ---------------------------------------------------------------------------------
pg_up() {
  command -v pg_lsclusters >/dev/null || apt_install postgresql
  local ver
  ver="$(pg_lsclusters -h | awk 'NR==1 {print $1}')"
  if [ -z "$ver" ]; then
    ver="$(ls /usr/lib/postgresql | sort -V | tail -1)"
    as_root pg_createcluster "$ver" main >/dev/null
  fi
  if ! port_open 5432; then
    as_root pg_ctlcluster "$ver" main start
  fi
  wait_port PostgreSQL 5432 30
  as_postgres psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'" | grep -q 1 ||
    as_postgres psql -qc "CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
  as_postgres psql -qtAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -q 1 ||
    as_postgres createdb -O "$PG_USER" "$PG_DB"
  log "PostgreSQL $ver on 127.0.0.1:5432, database $PG_DB (user $PG_USER)"
}
pg_down() {
  command -v pg_lsclusters >/dev/null || return 0
  local ver
  ver="$(pg_lsclusters -h | awk 'NR==1 {print $1}')"
  [ -n "$ver" ] && port_open 5432 && as_root pg_ctlcluster "$ver" main stop || true
}

# -- Redis --------------------------------------------------------------------------------------
redis_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  if ! port_open "$REDIS_PORT"; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" \
      --appendonly no --dir "$STATE" --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"
  fi
  wait_port Redis "$REDIS_PORT" 20
  log "Redis on 127.0.0.1:$REDIS_PORT"
}
redis_down() {
  port_open "$REDIS_PORT" || return 0
  if command -v redis-cli >/dev/null; then redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
}

# -- Kafka (KRaft) ------------------------------------------------------------------------------
kafka_libs() {
  local version libs
  version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)"
  libs="$CACHE/kafka-$version/libs"
  if [ ! -f "$libs/.complete" ]; then
    command -v mvn >/dev/null || { log "Kafka needs Maven (mvn) to fetch its jars"; return 1; }
    log "fetching Kafka $version jars from Maven Central into $libs"
    mvn -q -B -Dstyle.color=never -f scripts/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$libs" >&2
    touch "$libs/.complete"
  fi
  echo "$libs"
}
kafka_up() {
  if port_open "$KAFKA_PORT"; then log "Kafka already on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  command -v java >/dev/null || { log "Kafka needs Java 17+"; return 1; }
  local libs dir
  libs="$(kafka_libs)"
  dir="$STATE/kafka"
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((KAFKA_PORT + 1))
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$((KAFKA_PORT + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
  # the GC flags of Kafka's own kafka-run-class.sh: G1's default pause target (200 ms) would show
  # up as tail latency on every hop of the online chain
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
  if [ ! -f "$dir/data/meta.properties" ]; then
    local id
    id="$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    java "${java_opts[@]}" -cp "$libs/*" kafka.tools.StorageTool format -t "$id" \
      -c "$dir/server.properties" >"$dir/format.log" 2>&1
  fi
  nohup java "${java_opts[@]}" -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
    >"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/kafka.pid"
  wait_port Kafka "$KAFKA_PORT" 60 || { tail -20 "$dir/kafka.log" >&2; return 1; }
  log "Kafka (KRaft) on 127.0.0.1:$KAFKA_PORT, log $dir/kafka.log"
}
kafka_down() {
  local pidfile="$STATE/kafka/kafka.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# -- MLflow tracking server ----------------------------------------------------------------------
mlflow_up() {
  if port_open "$MLFLOW_PORT"; then log "MLflow already on 127.0.0.1:$MLFLOW_PORT"; return 0; fi
  [ -x .venv/bin/mlflow ] || bash scripts/setup.sh >&2
  local dir="$STATE/mlflow"
  mkdir -p "$dir"
  # lean on 2 cores: one worker, no job-execution processes (the default spawns ~15, 3.6 GB)
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false nohup .venv/bin/mlflow server \
    --backend-store-uri "sqlite:///$dir/mlflow.db" --artifacts-destination "$dir/artifacts" \
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 >"$dir/mlflow.log" 2>&1 &
  echo $! >"$dir/mlflow.pid"
  wait_port MLflow "$MLFLOW_PORT" 90 || { tail -20 "$dir/mlflow.log" >&2; return 1; }
  log "MLflow server on http://127.0.0.1:$MLFLOW_PORT (store $dir)"
}
mlflow_down() {
  local pidfile="$STATE/mlflow/mlflow.pid"
  [ -f "$pidfile" ] || return 0
  pkill -P "$(cat "$pidfile")" 2>/dev/null || true
  kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

status() {
  local name port
  for pair in "postgres:5432" "redis:$REDIS_PORT" "kafka:$KAFKA_PORT" "mlflow:$MLFLOW_PORT"; do
    name="${pair%%:*}"; port="${pair##*:}"
    if port_open "$port"; then echo "$name: up (127.0.0.1:$port)"; else echo "$name: down"; fi
  done
}

action="${1:-status}"
shift || true
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(postgres redis kafka mlflow)
case "$action" in
  up) for s in "${services[@]}"; do case "$s" in
        postgres) pg_up ;; redis) redis_up ;; kafka) kafka_up ;; mlflow) mlflow_up ;;
        *) log "unknown service $s"; exit 2 ;; esac; done ;;
  down) for s in "${services[@]}"; do case "$s" in
        postgres) pg_down ;; redis) redis_down ;; kafka) kafka_down ;; mlflow) mlflow_down ;;
        *) log "unknown service $s"; exit 2 ;; esac; done ;;
  status) status ;;
  *) echo "usage: $0 up|down|status [postgres|redis|kafka|mlflow ...]" >&2; exit 2 ;;
esac
