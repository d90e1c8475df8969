#!/usr/bin/env bash
# A team tracking server: PostgreSQL (Debian's packages) as MLflow's backend store, and
# `mlflow server` with a proxied artifact store in front of it. Both listen on 127.0.0.1 only.
#
#   bash scripts/server.sh start    # prints the `export MLFLOW_TRACKING_URI=...` line to run
#   bash scripts/server.sh status
#   bash scripts/server.sh stop
#
# Everything lives in $SERVER_DIR (default .server/, git-ignored): the database cluster (pgdata/),
# the artifacts (artifacts/), the logs (postgres/postgres.log, mlflow.log), pid files and the generated credentials file (mode 600).
# Settings from the environment:
#   SERVER_DIR          where the state lives                    (.server)
#   PGPORT              PostgreSQL's port on 127.0.0.1            (5433; Debian's own cluster keeps 5432)
#   MLFLOW_PORT         the tracking server's port on 127.0.0.1   (5050)
#   MLFLOW_DB_USER      the database role MLflow uses             (mlflow)
#   MLFLOW_DB_PASSWORD  its password; default: generated once into $SERVER_DIR/credentials
# Teammates on other machines reach it through an SSH tunnel (ssh -L 5050:127.0.0.1:5050 host),
# or a reverse proxy with authentication in front of it; never by rebinding it to 0.0.0.0.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SERVER_DIR=$(realpath -m "${SERVER_DIR:-.server}")
PGPORT=${PGPORT:-5433}
MLFLOW_PORT=${MLFLOW_PORT:-5050}
HOST=127.0.0.1
PGDATA=$SERVER_DIR/pgdata
RUN=$SERVER_DIR/postgres     # the cluster's unix socket and log (owned by the database user)
CREDENTIALS=$SERVER_DIR/credentials

die() { echo "error: $*" >&2; exit 1; }

# As root, PostgreSQL runs as Debian's `postgres` system user (initdb and postgres refuse root).
if [ "$(id -u)" = 0 ]; then
  AS_DB=(runuser -u postgres --)
else
  AS_DB=()
fi

pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/pg_ctl" ] && { echo "$dir"; return; }
  done
  command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
  return 1
}

ensure_postgres() {
  if ! pg_bin >/dev/null && command -v apt-get >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    echo "installing PostgreSQL from Debian's packages..." >&2
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fi
  PG=$(pg_bin) || die "PostgreSQL is not installed (apt-get install -y postgresql)"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (Debian's postgresql package creates it)"
  fi
  [ -x .venv/bin/mlflow ] || die ".venv/bin/mlflow is missing: run bash scripts/setup.sh first"
  .venv/bin/python -c "import psycopg" 2>/dev/null \
    || .venv/bin/pip install -q --disable-pip-version-check "psycopg[binary]>=3.1"
}

credentials() {
  DB_USER=${MLFLOW_DB_USER:-mlflow}
  if [ -n "${MLFLOW_DB_PASSWORD:-}" ]; then
    DB_PASSWORD=$MLFLOW_DB_PASSWORD
  else
    if [ ! -s "$CREDENTIALS" ]; then
      (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$CREDENTIALS")
    fi
    DB_PASSWORD=$(cat "$CREDENTIALS")
  fi
  # libpq reads these: the password never appears on a command line or in the tracking URI.
  export PGHOST=$HOST PGPORT PGUSER=$DB_USER PGPASSWORD=$DB_PASSWORD PGDATABASE=postgres
}

pg_running() { [ -f "$PGDATA/postmaster.pid" ] && "${AS_DB[@]}" "$PG/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
mlflow_pid() { [ -f "$SERVER_DIR/mlflow.pid" ] && kill -0 "$(cat "$SERVER_DIR/mlflow.pid")" 2>/dev/null && cat "$SERVER_DIR/mlflow.pid"; }

start() {
  ensure_postgres
  mkdir -p "$SERVER_DIR" "$SERVER_DIR/artifacts" "$RUN"
  credentials
  if [ "$(id -u)" = 0 ]; then chown postgres "$RUN"; fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    if [ "$(id -u)" = 0 ]; then chown postgres "$PGDATA"; fi
    chmod 700 "$PGDATA"
    local pwfile; pwfile=$(mktemp "$RUN/pw.XXXXXX")
    printf '%s\n' "$DB_PASSWORD" > "$pwfile"
    if [ "$(id -u)" = 0 ]; then chown postgres "$pwfile"; fi
    # The cluster's superuser is the MLflow role; every connection, local ones too, needs its password.
    "${AS_DB[@]}" "$PG/initdb" -D "$PGDATA" -U "$DB_USER" --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 >/dev/null
    rm -f "$pwfile"
  fi
  if ! pg_running; then
    "${AS_DB[@]}" "$PG/pg_ctl" -D "$PGDATA" -l "$RUN/postgres.log" -w -t 60 \
      -o "-c listen_addresses=$HOST -p $PGPORT -k $RUN" start >/dev/null \
      || die "PostgreSQL did not start; see $RUN/postgres.log"
  fi
  "$PG/psql" -tAc "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1 \
    || "$PG/psql" -qc "CREATE DATABASE mlflow" >/dev/null
  if ! mlflow_pid >/dev/null; then
    # Its own session, so `stop` ends the server and its workers together.
    setsid .venv/bin/mlflow server \
      --backend-store-uri "postgresql+psycopg://$DB_USER@$HOST:$PGPORT/mlflow" \
      --artifacts-destination "$SERVER_DIR/artifacts" --serve-artifacts \
      --host "$HOST" --port "$MLFLOW_PORT" --workers 2 \
      > "$SERVER_DIR/mlflow.log" 2>&1 < /dev/null &
    echo $! > "$SERVER_DIR/mlflow.pid"
    for _ in $(seq 240); do
      curl -fs "http://$HOST:$MLFLOW_PORT/health" >/dev/null 2>&1 && break
      kill -0 "$(cat "$SERVER_DIR/mlflow.pid")" 2>/dev/null || die "mlflow server exited; see $SERVER_DIR/mlflow.log"
      sleep 0.5
    done
    curl -fs "http://$HOST:$MLFLOW_PORT/health" >/dev/null || die "mlflow server did not answer in 120 s; see $SERVER_DIR/mlflow.log"
  fi
  echo "PostgreSQL on $HOST:$PGPORT (cluster $PGDATA), MLflow on http://$HOST:$MLFLOW_PORT (artifacts $SERVER_DIR/artifacts)" >&2
  echo "export MLFLOW_TRACKING_URI=http://$HOST:$MLFLOW_PORT"
}

stop() {
  local pid
  if pid=$(mlflow_pid); then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$SERVER_DIR/mlflow.pid"
  if PG=$(pg_bin) && pg_running; then
    "${AS_DB[@]}" "$PG/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "stopped (state kept in $SERVER_DIR)" >&2
}

status() {
  local pg=stopped ml=stopped
  if PG=$(pg_bin) && pg_running; then pg="running on $HOST:$PGPORT"; fi
  if mlflow_pid >/dev/null; then ml="running on http://$HOST:$MLFLOW_PORT"; fi
  echo "PostgreSQL: $pg; MLflow server: $ml"
  [ "$pg" != stopped ] && [ "$ml" != stopped ]
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: bash scripts/server.sh start|stop|status" ;;
esac
