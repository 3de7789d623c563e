#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, cargo-fuzz and libFuzzer on nightly) and runs each one
# for SECONDS_PER_TARGET seconds (default 5), one after the other. Fails if any target
# finds a crash; the crashing input is left in fuzz/artifacts/<target>/.
#
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]
#   bash scripts/fuzz.sh 5      # the short run scripts/test.sh makes
#   bash scripts/fuzz.sh 600    # the long run (ten minutes per target)
#
# RocksDB's C++ is not compiled again: the build links the static library the main
# build made (`cargo build --workspace --all-targets`, newest
# $CARGO_TARGET_DIR/debug/build/librocksdb-sys-*/out/librocksdb.a), or the one in
# $ROCKSDB_LIB_DIR if that is set. The fuzz build has its own target directory,
# $CARGO_TARGET_DIR/fuzz, and each target keeps the inputs it found in
# $CARGO_TARGET_DIR/fuzz/corpus-<fixtures>/<target>, so coverage grows from run to run;
# the seeds committed in fuzz/corpus/<target> are read, never written. <fixtures> is a
# digest of fuzz/fixtures and fuzz/src: a kept input may be a validly signed bundle or
# block of the fixed fuzz genesis from an older fixture (an older seed the fuzzer
# kept), which proves something else and would fail the proof target's property, so
# the kept inputs start over whenever the fixtures change (older ones are removed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
fapiao_install_missing

seconds="${1:-5}"
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]" >&2
  exit 2
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "installing the nightly toolchain (libFuzzer's instrumentation needs it)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo +nightly install cargo-fuzz --locked
fi

if [[ -z ${ROCKSDB_LIB_DIR:-} ]]; then
  lib="$(ls -t "$CARGO_TARGET_DIR"/debug/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)"
  if [[ -z $lib ]]; then
    echo "no RocksDB static library under $CARGO_TARGET_DIR/debug/build:" \
      "run 'cargo build --workspace --all-targets' first, or set ROCKSDB_LIB_DIR" >&2
    exit 1
  fi
  export ROCKSDB_LIB_DIR="${lib%/*}"
fi
export ROCKSDB_STATIC=1

fuzz_target_dir="$CARGO_TARGET_DIR/fuzz"
# No sanitizer: our crates forbid unsafe code, the RocksDB library is not instrumented
# anyway, and AddressSanitizer would halve the executions per second. Debug assertions
# and overflow checks stay on (cargo-fuzz's default).
build=(cargo +nightly fuzz build --fuzz-dir fuzz --sanitizer none --target-dir "$fuzz_target_dir")
echo "== ${build[*]} (RocksDB from $ROCKSDB_LIB_DIR)" >&2
"${build[@]}"

bin_dir="$fuzz_target_dir/x86_64-unknown-linux-gnu/release"
if (($# > 0)); then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi

fixtures="$(cat fuzz/fixtures/* fuzz/src/*.rs | sha256sum | cut -c1-16)"
corpus_root="$fuzz_target_dir/corpus-$fixtures"
for old in "$fuzz_target_dir"/corpus "$fuzz_target_dir"/corpus-*; do
  if [[ -d $old && $old != "$corpus_root" ]]; then
    rm -rf "$old"
  fi
done

failed=()
summary=()
for t in "${targets[@]}"; do
  corpus="$corpus_root/$t"
  artifacts="fuzz/artifacts/$t"
  log="$fuzz_target_dir/logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "${log%/*}" "fuzz/corpus/$t"
  echo "== $t: ${seconds}s" >&2
  # New inputs go to the first corpus directory only; the committed seeds are the second.
  if "$bin_dir/$t" "$corpus" "fuzz/corpus/$t" \
    -max_total_time="$seconds" -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
    tail -n 40 "$log" >&2
  fi
  runs="$(awk '/^stat::number_of_executed_units/ { print $NF }' "$log")"
  rate="$(awk '/^stat::average_exec_per_sec/ { print $NF }' "$log")"
  summary+=("$(printf '%-24s %-6s %12s runs %8s exec/s' "$t" "$status" "${runs:-?}" "${rate:-?}")")
done

printf '%s\n' "${summary[@]}" >&2
if ((${#failed[@]})); then
  echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/, logs in $fuzz_target_dir/logs/)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash" >&2
