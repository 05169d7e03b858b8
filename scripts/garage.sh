#!/usr/bin/env bash
# A throwaway single-node Garage (S3-compatible server) on 127.0.0.1 for tests
# and `make demo-s3`. Everything lives under DIR.
#   garage.sh start DIR   start it, create bucket + key; prints shell exports
#   garage.sh stop DIR    stop it
#   garage.sh restart DIR start it again on the same data and ports (after stop)
# Needs a `garage` binary (scripts/ensure-garage.sh installs one).
set -euo pipefail
cmd=$1 dir=$(realpath -m "$2")
GARAGE=${GARAGE:-garage}
command -v "$GARAGE" >/dev/null || { echo "garage.sh: no garage binary; run scripts/ensure-garage.sh" >&2; exit 1; }
cfg=$dir/garage.toml
g() { "$GARAGE" -c "$cfg" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

launch() {
    # exec with every fd redirected: nothing may hold the caller's stdout
    # pipe open, or `$(garage.sh start ...)` would wait forever.
    (cd "$dir" && exec "$GARAGE" -c "$cfg" server </dev/null >"$dir/garage.log" 2>&1) &
    echo $! >"$dir/garage.pid"
    for _ in $(seq 1 100); do
        g status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "garage.sh: garage did not start; see $dir/garage.log" >&2
    exit 1
}

case $cmd in
start)
    mkdir -p "$dir/meta" "$dir/data"
    s3_port=$(free_port) rpc_port=$(free_port) admin_port=$(free_port)
    cat >"$cfg" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
TOML
    launch
    node=$(g node id -q 2>/dev/null | cut -d@ -f1)
    g layout assign -z dc1 -c 1G "$node" >/dev/null
    g layout apply --version 1 >/dev/null
    g bucket create coffer-test >/dev/null
    keyinfo=$(g key create coffer-test-key)
    key_id=$(echo "$keyinfo" | awk -F': *' '/Key ID/ {print $2; exit}')
    secret=$(echo "$keyinfo" | awk -F': *' '/Secret key/ {print $2; exit}')
    g bucket allow --read --write --owner coffer-test --key coffer-test-key >/dev/null
    cat >"$dir/env" <<ENV
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=garage
export AWS_EC2_METADATA_DISABLED=true
export COFFER_S3_ENDPOINT=http://127.0.0.1:$s3_port
export COFFER_S3_PATH_STYLE=true
export GARAGE_TEST_BUCKET=coffer-test
ENV
    cat "$dir/env"
    ;;
restart)
    launch
    ;;
stop)
    if [ -f "$dir/garage.pid" ]; then
        pid=$(cat "$dir/garage.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/garage.pid"
    fi
    ;;
*) echo "usage: $0 start|stop|restart DIR" >&2; exit 2 ;;
esac
