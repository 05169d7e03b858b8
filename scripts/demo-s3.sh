#!/usr/bin/env bash
# The demo against S3: a throwaway single-node Garage on 127.0.0.1 under
# ./demo-s3, a repository in its bucket; back up, list, dry-run, restore, verify.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
BIN=${COFFER_BIN:-target/release/coffer}
DEMO=demo-s3
rm -rf "$DEMO"
mkdir -p "$DEMO"
eval "$(scripts/garage.sh start "$DEMO/garage")"
trap 'scripts/garage.sh stop "$DEMO/garage"' EXIT
umask 077
head -c 24 /dev/urandom | base64 > "$DEMO/passphrase"
umask 022
export COFFER_PASSWORD_FILE="$DEMO/passphrase"
export COFFER_REPOSITORY="s3://$GARAGE_TEST_BUCKET/demo"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "S3 endpoint $COFFER_S3_ENDPOINT (path-style), bucket $GARAGE_TEST_BUCKET"
step "$BIN" init
step "$BIN" backup fixtures/sample-tree --tag demo
step "$BIN" backup fixtures/sample-tree --tag demo
step "$BIN" snapshots
step "$BIN" restore latest --target "$DEMO/restore-all" --dry-run
step "$BIN" restore latest --target "$DEMO/restore-docs" --include 'fixtures/sample-tree/docs'
diff -r fixtures/sample-tree/docs "$DEMO/restore-docs/fixtures/sample-tree/docs"
echo "partial restore matches the source byte for byte"
step "$BIN" verify --read-data
