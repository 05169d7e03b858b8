#!/usr/bin/env bash
# coffer's main job on the embedded default (a local repository under ./demo):
# back up the sample tree and a sample database, list, dry-run restore,
# restore a part of each, run a restore drill, verify.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COFFER_BIN:-target/release/coffer}
# COFFER_DEMO_DIR: somewhere else than ./demo (the test that runs this script).
DEMO=${COFFER_DEMO_DIR:-demo}
rm -rf "$DEMO"
mkdir -p "$DEMO"
# A random passphrase in a 0600 file: how cron runs coffer too.
umask 077
head -c 24 /dev/urandom | base64 > "$DEMO/passphrase"
umask 022
export COFFER_PASSWORD_FILE="$DEMO/passphrase"
export COFFER_REPOSITORY="$DEMO/repo"
export PATH="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -n 1):$PATH"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# A throwaway PostgreSQL server holding the sample database.
scripts/ensure-postgres.sh
PORT=$(scripts/pg-cluster.sh start "$DEMO/pg")
trap 'scripts/pg-cluster.sh stop "$DEMO/pg"' EXIT
PG="postgres://postgres@127.0.0.1:$PORT"
psql -X -q -d "$PG/postgres" -c 'CREATE DATABASE shop'
psql -X -q -v ON_ERROR_STOP=1 -d "$PG/shop" -f fixtures/postgres/sample.sql >/dev/null

step "$BIN" init
step "$BIN" backup fixtures/sample-tree --pg "$PG/shop" --tag demo
step "$BIN" backup fixtures/sample-tree --pg "$PG/shop" --tag demo
cat <<'NOTE'
(nothing changed, so at most one chunk is new: pg_dump writes the time of the dump, to
 the second, into the archive's header, so the dump's first chunk differs unless both ran
 within one second; the sample database fits in one chunk. A large database adds that
 chunk plus the parts of its tables that changed.)
NOTE
step "$BIN" snapshots
step "$BIN" restore latest --target "$DEMO/restore-all" --dry-run
step "$BIN" restore latest --db shop --pg-target "$PG/shop_copy" --schema app --dry-run
step "$BIN" restore latest --target "$DEMO/restore-docs" --include 'fixtures/sample-tree/docs'
diff -r fixtures/sample-tree/docs "$DEMO/restore-docs/fixtures/sample-tree/docs"
echo "partial restore matches the source byte for byte"
psql -X -q -d "$PG/postgres" -c 'CREATE DATABASE shop_audit'
step "$BIN" restore latest --db shop --pg-target "$PG/shop_audit" --schema audit --table events
psql -X -d "$PG/shop_audit" -c 'SELECT op, count(*) FROM audit.events GROUP BY 1 ORDER BY 1'
step "$BIN" drill latest --pg-scratch "$PG/postgres"
step "$BIN" verify --read-data
printf '\ndemo repository: %s (passphrase in %s)\n' "$DEMO/repo" "$DEMO/passphrase"
