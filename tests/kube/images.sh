#!/usr/bin/env bash
# Builds the images the test node runs as OCI image archives, without Docker
# or a registry; `ctr -n k8s.io images import` loads them.
#
#   gossamer.dev/sidecar:test   gossamer-sidecar
#   gossamer.dev/operator:test  gossamer-operator
#   gossamer.dev/pause:test     the sandbox image (tests/kube/pause, static Go)
#
# The Rust binaries are the workspace's own builds, linked statically
# (glibc's static-pie: `-C target-feature=+crt-static`, built for the host
# triple with --target so they never mix with the harness's own builds), so
# each image's root holds the stripped binary, /etc/passwd and /etc/group
# with user 65532 (nonroot), /etc/nsswitch.conf, and nothing else: no
# shell, no library. Static glibc resolves names itself (files and DNS),
# reading the /etc/hosts and /etc/resolv.conf the kubelet mounts.
# Layers are written deterministically (sorted, mtime 0, owner 0), so the
# same binary gives the same digest.
#
# Usage: bash tests/kube/images.sh [OUT_DIR]
#   SIDECAR_BIN, OPERATOR_BIN  the static binaries to pack; default: built
#                              with `cargo build --target <host>` into
#                              $CARGO_TARGET_DIR/<host>/debug
#   OUT_DIR                    default ~/.cache/gossamer/images
# Prints OUT_DIR on its last line, holding sidecar.oci.tar,
# operator.oci.tar and pause.oci.tar. An archive whose inputs did not change
# is kept (seconds).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "$here/../.." && pwd)"

log() { printf '[images] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

cache="${GOSSAMER_CACHE:-$HOME/.cache/gossamer}"
out="${1:-$cache/images}"
mkdir -p "$out"

for tool in tar sha256sum strip readelf go rustc; do
  command -v "$tool" >/dev/null 2>&1 || die "missing $tool: install it (Debian: tar, coreutils, binutils, golang-go; Rust by rustup)"
done

if [ -z "${SIDECAR_BIN:-}" ] || [ -z "${OPERATOR_BIN:-}" ]; then
  target="${CARGO_TARGET_DIR:-$top/target}"
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  log "building static gossamer-sidecar and gossamer-operator (cargo build --target $triple)"
  static=(env RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" cargo build -q --target "$triple")
  (cd "$top" && "${static[@]}" -p gossamer-sidecar --bin gossamer-sidecar)
  (cd "$top" && "${static[@]}" -p gossamer-operator --bin gossamer-operator)
  SIDECAR_BIN="${SIDECAR_BIN:-$target/$triple/debug/gossamer-sidecar}"
  OPERATOR_BIN="${OPERATOR_BIN:-$target/$triple/debug/gossamer-operator}"
fi
[ -x "$SIDECAR_BIN" ] || die "SIDECAR_BIN=$SIDECAR_BIN is not an executable"
[ -x "$OPERATOR_BIN" ] || die "OPERATOR_BIN=$OPERATOR_BIN is not an executable"

work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Writes a blob into layout $1 and sets $blob_digest and $blob_size.
put_blob() {
  local layout=$1 file=$2
  blob_digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
  blob_size="$(stat -c %s "$file")"
  mkdir -p "$layout/blobs/sha256"
  mv "$file" "$layout/blobs/sha256/${blob_digest#sha256:}"
}

# pack NAME REF ROOTFS ENTRYPOINT: writes $out/NAME.oci.tar, one layer.
pack() {
  local name=$1 ref=$2 rootfs=$3 entrypoint=$4
  local layout="$work/$name-layout"
  mkdir -p "$layout"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$rootfs" -cf "$work/layer.tar" .
  put_blob "$layout" "$work/layer.tar"
  local layer_digest=$blob_digest layer_size=$blob_size
  printf '{"architecture":"amd64","os":"linux","config":{"User":"65532:65532","Entrypoint":["%s"],"Env":["PATH=/usr/local/bin:/usr/bin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created_by":"tests/kube/images.sh"}]}' \
    "$entrypoint" "$layer_digest" >"$work/config.json"
  put_blob "$layout" "$work/config.json"
  local config_digest=$blob_digest config_size=$blob_size
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
  put_blob "$layout" "$work/manifest.json"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$blob_digest" "$blob_size" "$ref" "${ref##*:}" >"$layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$layout" -cf "$out/.$name.oci.tar.tmp" oci-layout index.json blobs
  mv "$out/.$name.oci.tar.tmp" "$out/$name.oci.tar"
  log "$ref: $out/$name.oci.tar, $(du -h "$out/$name.oci.tar" | cut -f1), layer $layer_digest"
}

# A root with the user 65532 and nothing else.
base_rootfs() {
  local root=$1
  mkdir -p "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
}

# A root holding the static `bin` at /usr/local/bin/NAME (stripped), and
# the name-service order static glibc reads.
static_rootfs() {
  local root=$1 bin=$2 name=$3
  if readelf -d "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
    die "$bin links shared libraries ($(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')); build it with RUSTFLAGS='-C target-feature=+crt-static' --target <host triple>"
  fi
  base_rootfs "$root"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  mkdir -p "$root/usr/local/bin"
  strip -o "$root/usr/local/bin/$name" "$bin"
}

# The inputs of an archive; it is rebuilt when they change.
stamp_of() { { cat "$here/images.sh"; sha256sum "$@"; } | sha256sum | cut -d' ' -f1; }

build_rust_image() {
  local name=$1 bin=$2 binname=$3
  local stamp
  stamp="$(stamp_of "$bin")"
  if [ -f "$out/$name.oci.tar" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "gossamer.dev/$name:test is up to date: $out/$name.oci.tar"
    return
  fi
  static_rootfs "$work/$name-root" "$bin" "$binname"
  pack "$name" "gossamer.dev/$name:test" "$work/$name-root" "/usr/local/bin/$binname"
  echo "$stamp" >"$out/$name.stamp"
}

build_pause_image() {
  local stamp
  stamp="$(stamp_of "$here/pause/main.go" "$here/pause/go.mod")"
  if [ -f "$out/pause.oci.tar" ] && [ "$(cat "$out/pause.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "gossamer.dev/pause:test is up to date: $out/pause.oci.tar"
    return
  fi
  local root="$work/pause-root"
  base_rootfs "$root"
  (cd "$here/pause" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false nice -n 10 go build -trimpath -ldflags "-s -w" -o "$root/pause" .)
  pack pause "gossamer.dev/pause:test" "$root" /pause
  echo "$stamp" >"$out/pause.stamp"
}

build_pause_image
build_rust_image sidecar "$SIDECAR_BIN" gossamer-sidecar
build_rust_image operator "$OPERATOR_BIN" gossamer-operator
echo "$out"
