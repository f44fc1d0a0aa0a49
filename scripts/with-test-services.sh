#!/usr/bin/env bash
# Runs "$@" with PostgreSQL at $DATABASE_URL and Redis at $REDIS_URL. When nothing answers
# there but the server programs are installed, it starts throwaway instances in a
# temporary directory for the run (PostgreSQL as an unprivileged user, since it refuses to
# run as root) and stops them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
tmp=""
pg_ctl_bin=""

cleanup() {
  if [ -n "$tmp" ]; then
    [ -n "$pg_ctl_bin" ] && as_db_user "$pg_ctl_bin" -D "$tmp/pg" -m immediate stop >/dev/null 2>&1 || true
    [ -f "$tmp/redis.pid" ] && kill "$(cat "$tmp/redis.pid")" 2>/dev/null || true
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_db_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}
ensure_tmp() { [ -n "$tmp" ] || { tmp=$(mktemp -d /tmp/suanli-services.XXXXXX); chmod 755 "$tmp"; }; }

pg_answers() {
  $PY - "$DATABASE_URL" <<'PYEOF' >/dev/null 2>&1
import sys, psycopg
from urllib.parse import urlsplit, urlunsplit
u = urlsplit(sys.argv[1])
psycopg.connect(urlunsplit(u._replace(path="/postgres")), connect_timeout=3).close()
PYEOF
}
redis_answers() {
  $PY -c 'import sys, redis; redis.Redis.from_url(sys.argv[1], socket_timeout=3).ping()' "$REDIS_URL" >/dev/null 2>&1
}

if ! pg_answers; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$bindir" ]; then
    echo "PostgreSQL does not answer at $DATABASE_URL and no server is installed." >&2
    echo "Install PostgreSQL >= 15 (apt-get install postgresql) or set DATABASE_URL." >&2
    exit 1
  fi
  ensure_tmp
  port=$(free_port)
  pg_ctl_bin="$bindir/pg_ctl"
  mkdir -p "$tmp/pg" && chown nobody "$tmp/pg" 2>/dev/null || true
  as_db_user "$bindir/initdb" -D "$tmp/pg" -U postgres --auth=trust >/dev/null
  as_db_user "$pg_ctl_bin" -D "$tmp/pg" -l "$tmp/pg/log" -w \
    -o "-p $port -k $tmp/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/suanli"
  echo "started a throwaway PostgreSQL at $DATABASE_URL"
fi

# The named database itself (tests make their own; `makemigrations --check` reads this one).
$PY - "$DATABASE_URL" <<'PYEOF'
import sys, psycopg
from urllib.parse import urlsplit, urlunsplit
u = urlsplit(sys.argv[1])
name = u.path.lstrip("/")
with psycopg.connect(urlunsplit(u._replace(path="/postgres")), autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
PYEOF

if ! redis_answers; then
  if ! command -v redis-server >/dev/null; then
    echo "Redis does not answer at $REDIS_URL and redis-server is not installed." >&2
    exit 1
  fi
  ensure_tmp
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log" --dir "$tmp"
  for _ in $(seq 50); do [ -f "$tmp/redis.pid" ] && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$port/0"
  echo "started a throwaway Redis at $REDIS_URL"
fi

"$@"
