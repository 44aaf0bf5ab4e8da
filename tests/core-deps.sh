#!/usr/bin/env bash
# The pure crates stay sans-IO: no async runtime, no RPC stack, no socket
# crate may reach their normal dependency trees, on any target.
#   gossamer-core            the engine (sidecar/core/src/lib.rs)
#   gossamer-operator-api    the CRD types
#   gossamer-operator-core   the operator's decisions
#   gossamer-operator-index  the operator's index of watched objects
# Fails naming each offending crate and what pulls it in.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='^(tokio|tonic|hyper|mio|socket2|tokio-stream)$'
status=0
for pkg in gossamer-core gossamer-operator-api gossamer-operator-core gossamer-operator-index; do
  tree="$(cargo tree -q -p "$pkg" -e normal --target all --prefix none)"
  found="$(awk '{print $1}' <<<"$tree" | grep -E "$banned" | sort -u || true)"
  if [ -n "$found" ]; then
    echo "$pkg must not depend on an async runtime, RPC stack or socket crate, but its dependency tree has:" >&2
    for c in $found; do
      echo "  - $c, pulled in by:" >&2
      cargo tree -q -p "$pkg" -e normal --target all -i "$c" 2>&1 | sed 's/^/      /' >&2
    done
    echo "Keep I/O in the shells (gossamer-sidecar, gossamer-operator); pure crates take inputs and return decisions." >&2
    status=1
    continue
  fi
  echo "$pkg: $(awk '{print $1}' <<<"$tree" | sort -u | wc -l) crates in the normal dependency tree, none of tokio, tonic, hyper, mio, socket2, tokio-stream" >&2
done
exit "$status"
