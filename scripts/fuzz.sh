#!/usr/bin/env bash
# Runs every fuzz target (src/fuzz.rs, built from fuzz/) for SECONDS each,
# starting from the committed seeds (fuzz/seeds/<target>) and the corpus
# earlier runs grew (fuzz/corpus/<target>, not committed). A crash, a leak of
# the time limit or an out-of-memory stops it with a non-zero status, and the
# input that did it is in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (make fuzz: 300 s each; make test: 15 s each)
#
# Built on the stable toolchain without a sanitizer (`-s none`): the library
# forbids unsafe code, and debug assertions and overflow checks stay on.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-${FUZZ_SECONDS:-300}}
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (about two minutes, once)"
    cargo install --locked cargo-fuzz
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^coffer')
fi
cd fuzz
cargo fuzz build -s none
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    start=$(date +%s)
    # Seeds: fuzz/seeds/<target>, and for the SQL lexer the SQL files the
    # PostgreSQL tests already use (new inputs go to the first folder only).
    seeds=()
    [ -d "seeds/$t" ] && seeds+=("seeds/$t")
    [ "$t" = sql ] && seeds+=(../fixtures/postgres)
    if ! out=$(cargo fuzz run -s none "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 2>&1); then
        echo "$out" | tail -n 40
        echo "fuzz: target $t FAILED (its input is in fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    runs=$(echo "$out" | sed -n 's/.*Done \([0-9]*\) runs.*/\1/p' | tail -n 1)
    echo "fuzz: $t: ${runs:-?} runs in $(( $(date +%s) - start )) s, no failure; corpus $(ls "corpus/$t" | wc -l) inputs"
done
