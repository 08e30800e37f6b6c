#!/usr/bin/env bash
# `make bench`: the benchmarks of docs/BENCHMARKS.md, each writing its section there:
#   ingest    webhook ingest of Frontdesk (SQLite, PostgreSQL, two instances) beside a bare aiohttp
#             ceiling and a bare aiogram echo bot; with its workers on, updates fully handled per second
#             and update → reply latency at 100 and 1,000/s beside the echo bot; --before DIR adds the
#             same Frontdesk rows for another checkout (bench/ingest.py, about twenty minutes);
#   outbound  2,000 replies to 2,000 chats at Telegram's limits, one and two instances
#             (bench/outbound.py, about seventeen minutes);
#   inbox     inbox-style queries on 100k conversations and 1M messages (bench/inbox.py, about eight minutes);
#   widget    idle widget sockets per process and manager reply → widget fan-out, one and two
#             instances (bench/widget.py, about ten minutes);
#   analytics the staff analytics report over 7, 30 and 365 days on 100k conversations and 1M messages,
#             with and without migration 0007's indexes (bench/analytics.py, about ten minutes);
#   miniapp   the Mini App API's p50/p99 and SQL per request on 100k conversations and 1M messages, and
#             customer message → staff inbox socket, one and two instances (bench/miniapp_api.py, about fifteen minutes);
#   studio    the prompt studio on a 200-item project (SQLite): compiling it, the compile request and the
#             autosave, with a profile (bench/studio.py, about a minute);
#   templates the prompt studio's template search on 10,000 templates, SQLite and PostgreSQL
#             (bench/templates.py, about ten minutes);
#   knowledge retrieval p50/p99 and memory at 1k, 10k and 100k chunks, SQLite and PostgreSQL, on one core,
#             and indexing a 300-page PDF and a 200-page website (bench/knowledge_scale.py, about twenty minutes);
#   knowledge_quality  whether the right FAQ item reaches the model, per language, on the evaluation set
#             bench/data/knowledge_eval.json (bench/knowledge_quality.py, about six minutes);
#   rush      rush hour (issue 21): 60 and 300 customers write at once while the model streams like a hosted
#             one, on Telegram (tgsim with its flood limits) and the widget, the default settings against
#             OUTBOX_WORKERS=4: time to the first words and to the answer, 429s, CPU and memory
#             (bench/rush_hour.py; about twenty minutes while answers run four at a time, under ten once they do not).
#   fleet     many bots (issue 19), SQLite: 1,000 bots against one (start-up, memory per idle bot, stopping),
#             ingest spread over 1,000 bots against one bot, and one bot's flood against 99 other bots'
#             replies (bench/fleet.py, about eighteen minutes: three sections of five to eight).
# Starts a throwaway PostgreSQL (with its durable defaults: fsync and synchronous_commit on) and Redis
# on spare loopback ports and removes them afterwards. `bash bench/run.sh` runs all twelve;
# `bash bench/run.sh NAME [ARGS...]` runs one, ARGS going to its script (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."

benches=(ingest outbound inbox widget analytics miniapp studio templates knowledge knowledge_quality rush fleet)
if [ $# -gt 0 ] && [[ " ${benches[*]} " == *" $1 "* ]]; then
    benches=("$1"); shift
elif [ $# -gt 0 ]; then
    echo "usage: bash bench/run.sh [ingest|outbound|inbox|widget|analytics|miniapp|studio|templates|knowledge|knowledge_quality|rush|fleet [ARGS...]]" >&2; exit 2
fi

need_packages=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_packages+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "installing ${need_packages[*]} from Debian packages"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/frontdesk-bench.XXXXXX)
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

[ "$(id -u)" -eq 0 ] && chown postgres "$work"
as_pg "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start \
    -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" >/dev/null

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$work/redis.pid" --dir "$work" --logfile "$work/redis.log"

export BENCH_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
export BENCH_REDIS_URL="redis://127.0.0.1:$redis_port/0"
status=0
for bench in "${benches[@]}"; do
    if [ -n "${MAKELEVEL:-}" ]; then export BENCH_LAUNCHER="make bench"
    elif [ ${#benches[@]} -gt 1 ]; then export BENCH_LAUNCHER="bash bench/run.sh"
    else export BENCH_LAUNCHER="bash bench/run.sh $bench${*:+ $*}"; fi
    case "$bench" in
        ingest) .venv/bin/python bench/ingest.py --profile sqlite,postgres "$@" || status=1 ;;
        miniapp) .venv/bin/python bench/miniapp_api.py "$@" || status=1 ;;  # not miniapp.py: that name is the package's
        knowledge) .venv/bin/python bench/knowledge_scale.py "$@" || status=1 ;;
        rush) .venv/bin/python bench/rush_hour.py "$@" || status=1 ;;
        *) .venv/bin/python "bench/$bench.py" "$@" || status=1 ;;
    esac
done
exit $status
