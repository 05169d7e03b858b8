#!/usr/bin/env bash
# coffer's main job on the embedded default (a local repository under ./demo):
# back up the sample tree, list, dry-run restore, restore a part, verify.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COFFER_BIN:-target/release/coffer}
DEMO=demo
rm -rf "$DEMO"
mkdir -p "$DEMO"
# A random passphrase in a 0600 file: how cron runs coffer too.
umask 077
head -c 24 /dev/urandom | base64 > "$DEMO/passphrase"
umask 022
export COFFER_PASSWORD_FILE="$DEMO/passphrase"
export COFFER_REPOSITORY="$DEMO/repo"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step "$BIN" init
step "$BIN" backup fixtures/sample-tree --tag demo
step "$BIN" backup fixtures/sample-tree --tag demo
step "$BIN" snapshots
step "$BIN" restore latest --target "$DEMO/restore-all" --dry-run
step "$BIN" restore latest --target "$DEMO/restore-docs" --include 'fixtures/sample-tree/docs'
diff -r fixtures/sample-tree/docs "$DEMO/restore-docs/fixtures/sample-tree/docs"
echo "partial restore matches the source byte for byte"
step "$BIN" verify --read-data
printf '\ndemo repository: %s (passphrase in %s)\n' "$DEMO/repo" "$DEMO/passphrase"
