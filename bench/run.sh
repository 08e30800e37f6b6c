#!/usr/bin/env bash
# `make bench`: webhook ingest throughput of Frontdesk on SQLite and PostgreSQL beside a bare aiohttp
# ceiling and a bare aiogram echo bot. Starts a throwaway PostgreSQL on a spare loopback port (with
# its durable defaults: fsync and synchronous_commit on), removes it afterwards, and writes the
# results into docs/BENCHMARKS.md. Extra arguments go to bench/ingest.py (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing postgresql from Debian packages"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/frontdesk-bench.XXXXXX)
chmod 755 "$work"
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

as_pg() {  # PostgreSQL refuses to run as root
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] && chown postgres "$work"
as_pg "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start \
    -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" >/dev/null

export BENCH_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
if [ -n "${MAKELEVEL:-}" ]; then export BENCH_LAUNCHER="make bench"; else export BENCH_LAUNCHER="bash bench/run.sh${*:+ $*}"; fi
.venv/bin/python bench/ingest.py --profile sqlite,postgres "$@"
