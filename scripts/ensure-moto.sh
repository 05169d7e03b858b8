#!/usr/bin/env bash
# Makes sure moto's standalone S3 server (PyPI `moto[server]`) is installed in
# a virtualenv inside the repository (.venv-moto, not committed): the tests use
# it where Garage lacks a feature (Object Lock). An installed one is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-moto
if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c 'import moto, boto3' 2>/dev/null; then
    exit 0
fi
echo "ensure-moto: installing moto[server] into $VENV (about a minute, once)" >&2
rm -rf "$VENV"
if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian ships venv support separately.
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]'
"$VENV/bin/python" -c 'import moto, boto3'
