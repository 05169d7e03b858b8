#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the demo: `pg-cluster.sh start DIR` prints
# the port it listens on (127.0.0.1 only; an existing DIR is reused); `pg-cluster.sh stop DIR` stops it.
# Runs the server as the postgres user when started as root.
set -euo pipefail
cmd=$1 dir=$(realpath -m "$2")
bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bin=$d; done
[ -n "$bin" ] || bin=$(dirname "$(command -v initdb)")
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $cmd in
start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    # An existing cluster is reused (the benchmark keeps its large database).
    [ -f "$dir/data/PG_VERSION" ] ||
        as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
    # Already running (a benchmark run that was interrupted): reuse it.
    if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        sed -n 4p "$dir/data/postmaster.pid"
        exit 0
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    echo "$port"
    ;;
stop)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
