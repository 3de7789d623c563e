#!/usr/bin/env bash
# Run a node on its embedded default: a local one-member network with a generated
# genesis and keys under data/dev (created on the first start, reused afterwards).
# Installs what is missing first. Usage: bash scripts/dev.sh [--port N]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
fapiao_install_missing

# The same package and target selection as the test suite, so both share one build
# (a different selection can resolve features differently and rebuild RocksDB).
cargo build --workspace --all-targets --locked
echo "the fapiao command is $CARGO_TARGET_DIR/debug/fapiao" >&2
echo "  (for the examples below: export PATH=\"$CARGO_TARGET_DIR/debug:\$PATH\")" >&2
exec "$CARGO_TARGET_DIR/debug/fapiao" dev --data data/dev "$@"
