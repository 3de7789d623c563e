# Shared by scripts/dev.sh and scripts/test.sh: install what is missing, and pick a
# cargo target directory outside the clone so repeat runs (and CI) build incrementally.

set -euo pipefail

# Debian packages the build needs: libclang for RocksDB's bindgen, a C++ compiler for
# RocksDB itself, pkg-config; iptables for the replication test that cuts one node's
# peer traffic.
FAPIAO_APT_PACKAGES=(libclang-dev clang build-essential pkg-config iptables)

fapiao_install_missing() {
  local missing=()
  for p in "${FAPIAO_APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "installing missing packages: ${missing[*]}" >&2
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null; then
    echo "cargo is not installed: install a Rust toolchain (rustup) first" >&2
    exit 1
  fi
}

# Reuse one target directory across clones; CI gets incremental builds this way.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fapiao/target}"
mkdir -p "$CARGO_TARGET_DIR"
