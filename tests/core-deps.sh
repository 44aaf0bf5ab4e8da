#!/usr/bin/env bash
# The engine is sans-IO (sidecar/core/src/lib.rs): no async runtime, no RPC
# stack, no socket crate may reach gossamer-core's normal dependency tree,
# on any target. Fails naming each offending crate and what pulls it in.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='^(tokio|tonic|hyper|mio|socket2|tokio-stream)$'
tree="$(cargo tree -q -p gossamer-core -e normal --target all --prefix none)"
found="$(awk '{print $1}' <<<"$tree" | grep -E "$banned" | sort -u || true)"
if [ -n "$found" ]; then
  echo "gossamer-core must not depend on an async runtime, RPC stack or socket crate, but its dependency tree has:" >&2
  for c in $found; do
    echo "  - $c, pulled in by:" >&2
    cargo tree -q -p gossamer-core -e normal --target all -i "$c" 2>&1 | sed 's/^/      /' >&2
  done
  echo "Keep I/O in the shell (gossamer-sidecar); the core takes packets and time as inputs." >&2
  exit 1
fi
echo "gossamer-core: $(awk '{print $1}' <<<"$tree" | sort -u | wc -l) crates in the normal dependency tree, none of tokio, tonic, hyper, mio, socket2, tokio-stream" >&2
