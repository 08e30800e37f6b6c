#!/usr/bin/env bash
# The whole suite against real servers: SQLite (a file per test), PostgreSQL and Redis started here
# on spare loopback ports and removed afterwards. Installs the servers from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Known vulnerabilities in the locked versions (requirements/dev.txt holds the runtime's too): fails
# on a finding, warns and goes on when the vulnerability service cannot be reached.
.venv/bin/python tests/audit_lock.py requirements/dev.txt

need_packages=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_packages+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
[ -x /usr/bin/chromium ] || need_packages+=(chromium)  # the widget's browser tests (never a downloaded build)
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "installing ${need_packages[*]} from Debian packages"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/frontdesk-test.XXXXXX)
chmod 755 "$work"
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

as_pg() {  # PostgreSQL refuses to run as root
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres  # binaries without the package
    chown postgres "$work"
fi
as_pg "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres --no-sync >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start \
    -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$work/redis.pid" --dir "$work" --logfile "$work/redis.log"

export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
export TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"

.venv/bin/ruff check .
.venv/bin/mypy .

# The suite once per database, both at once (two cores); each prints its own summary, with its slowest
# tests (the suite is meant to stay under a quarter of an hour).
TEST_DATABASE=sqlite .venv/bin/python -m pytest -p no:cacheprovider --durations=20 "$@" >"$work/sqlite.out" 2>&1 &
sqlite_pid=$!
TEST_DATABASE=postgres .venv/bin/python -m pytest -p no:cacheprovider --durations=20 "$@" >"$work/postgres.out" 2>&1 &
postgres_pid=$!
status=0
wait $sqlite_pid || status=1
wait $postgres_pid || status=1
echo "=== SQLite ==="; cat "$work/sqlite.out"
echo "=== PostgreSQL ==="; cat "$work/postgres.out"
exit $status
