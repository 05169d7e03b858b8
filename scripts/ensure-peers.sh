#!/usr/bin/env bash
# Makes sure the benchmark's peers are on this machine: restic and borg from
# Debian's packages, rustic from crates.io (`cargo install --locked`). Each is
# reused when already installed; nothing is vendored.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
# pgBackRest: the WAL archiving case's peer.
command -v pgbackrest >/dev/null || missing+=(pgbackrest)
if [ ${#missing[@]} -gt 0 ]; then
    echo "ensure-peers: installing ${missing[*]} (apt)" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v rustic >/dev/null; then
    echo "ensure-peers: installing rustic-rs (cargo install --locked; takes several minutes)" >&2
    cargo install --locked rustic-rs
fi
for tool in restic borg rustic pgbackrest; do
    command -v "$tool" >/dev/null || { echo "ensure-peers: $tool still missing after install" >&2; exit 1; }
done
