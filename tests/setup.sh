#!/usr/bin/env bash
# Installs what Gossamer's demo and tests need, idempotently. Sourced by
# tests/demo.sh and tests/run-all.sh; safe to run again and again.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

apt_install() {
  # Installs Debian packages that are missing; `apt-get update` runs once.
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Native build tools (cc for libfuzzer-sys, pkg-config), git.
command -v cc >/dev/null 2>&1 || apt_install build-essential
command -v git >/dev/null 2>&1 || apt_install git

# Rust: the toolchain must be there (rustup is not reachable from CI);
# rustfmt and clippy come with it.
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || apt_install cargo rustc
cargo fmt --version >/dev/null 2>&1 || apt_install rustfmt
cargo clippy --version >/dev/null 2>&1 || apt_install rust-clippy

# Go: the interop peers are built from the published Go modules. memberlist
# v0.7 wants Go >= 1.25; an older go fetches the right toolchain from the
# module proxy by itself (GOTOOLCHAIN=auto).
if ! command -v go >/dev/null 2>&1; then
  for d in /usr/local/go/bin /usr/lib/go/bin; do
    [ -x "$d/go" ] && export PATH="$d:$PATH" && break
  done
fi
command -v go >/dev/null 2>&1 || apt_install golang-go
# The shell scripts' lint (tests/kube, the kind runner).
command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="${GOFLAGS:--mod=mod}"

# Caches outside the clone, shared by runs (CI clones afresh each time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gossamer/target}"
export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
mkdir -p "$CARGO_TARGET_DIR" "$GOCACHE"

# Fetch the Go modules of the interop peers now, so a test that needs
# them fails here, loudly, if the proxy cannot be reached.
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for mod in "$top"/tests/interop/*/go.mod; do
  [ -f "$mod" ] || continue
  (cd "$(dirname "$mod")" && go mod download) || {
    log "cannot download Go modules for $(dirname "$mod"): the interop tests need them"
    exit 1
  }
done
log "ready: $(cargo --version), $(go version | cut -d' ' -f3), target dir $CARGO_TARGET_DIR"
