#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_dump,
# pg_restore, psql, pgbench) are on this machine: reuses an installed set,
# otherwise installs Debian's postgresql package (no cluster is started: the
# tests start their own throwaway clusters).
set -euo pipefail
have() {
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_dump" ] && [ -x "$d/pgbench" ] && return 0
    done
    command -v initdb >/dev/null && command -v pg_dump >/dev/null && command -v pgbench >/dev/null
}
if have; then
    exit 0
fi
echo "ensure-postgres: installing Debian's postgresql package" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d stops the package from starting a cluster of its own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq postgresql postgresql-contrib >/dev/null
have || { echo "ensure-postgres: PostgreSQL binaries still missing after install" >&2; exit 1; }
