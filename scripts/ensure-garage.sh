#!/usr/bin/env bash
# Makes sure a `garage` binary (the S3-compatible server the tests run) is
# installed: reuses one on PATH or in ~/.cargo/bin, otherwise builds it from
# crates.io (about 7-10 minutes on a 2-core machine, once).
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
if command -v garage >/dev/null; then
    exit 0
fi
echo "ensure-garage: installing garage with cargo install --locked (takes several minutes, once)" >&2
cargo install --locked garage
command -v garage >/dev/null
