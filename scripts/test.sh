#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test of every crate.
# Installs what is missing first. Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
# The reprint test renders the HTML invoice in headless Chromium; the e-invoice test
# validates the 数电 XML against its schema with xmllint.
FAPIAO_APT_PACKAGES+=(chromium libxml2-utils)
fapiao_install_missing
# A one-shot CI build gains nothing from incremental compilation and its caches weigh
# gigabytes; say how much disk the run starts with, since a full disk is the usual way a
# cold run fails.
if [[ ${CI:-} == true ]]; then
  export CARGO_INCREMENTAL=0
fi
df -h "$CARGO_TARGET_DIR" | awk 'NR == 2 { print "== disk: " $4 " free for " ENVIRON["CARGO_TARGET_DIR"] }' >&2

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# A short fuzzing run of every target (5 s each, after the tests: it links the RocksDB
# library their build made). The long run is `bash scripts/fuzz.sh 600`.
echo "== bash scripts/fuzz.sh 5" >&2
fuzz_status=0
bash scripts/fuzz.sh 5 || fuzz_status=$?
# One closing line for the whole suite (cargo prints one per test binary, the last
# ones for doc-tests, which are empty).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
if ((fuzz_status != 0)); then
  echo "fuzzing failed (see above)" >&2
  ((status != 0)) || status=$fuzz_status
fi
exit "$status"
