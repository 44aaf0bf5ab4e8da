#!/usr/bin/env bash
# Builds the Kubernetes parts Gossamer's real-cluster tests run, from the Go
# module proxy alone, at the versions pinned in tests/kube/versions.sh:
#   kube-apiserver, kube-controller-manager, kubectl  (k8s.io/kubernetes)
#   etcd                                             (go.etcd.io/etcd/server/v3)
#   helm                                             (helm.sh/helm/v4)
#   coredns, when KUBE_EXTRA names it          (github.com/coredns/coredns)
# Binaries land in ~/.cache/gossamer/kube/<kube>-etcd<etcd>-helm<helm>/bin
# (KUBE_BIN_DIR overrides), which is printed on the last line. Idempotent: a
# binary already built for these versions is kept. Extra components (kubelet,
# kube-scheduler, kube-proxy, coredns) are built when named in KUBE_EXTRA;
# tests/kube/node-install.sh builds them with the Debian packages a test
# node needs.
#
# Usage: bash tests/kube/install.sh            # prints the bin folder
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/kube/versions.sh
source "$here/versions.sh"

log() { printf '[kube-install] %s\n' "$*" >&2; }

export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="-mod=mod -buildvcs=false"
export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
cache="${GOSSAMER_CACHE:-$HOME/.cache/gossamer}"
bin="${KUBE_BIN_DIR:-$cache/kube/${KUBE_VERSION}-etcd${ETCD_VERSION}-helm${HELM_VERSION}/bin}"
work="$cache/kube/src"
mkdir -p "$bin" "$work" "$GOCACHE"

# One build at a time: test binaries started together (or a test and
# run-all.sh) would otherwise each build the same binaries cold.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/kube/.install.lock"
  flock -n 9 || { log "another install.sh is building; waiting for it"; flock 9; }
fi

# Builds stay out of the way of everything else on a 2-core machine.
nice_go() { nice -n 10 go "$@"; }

kube_cmds=(kube-apiserver kube-controller-manager kubectl)
want_coredns=0
for extra in ${KUBE_EXTRA:-}; do
  case "$extra" in
    coredns) want_coredns=1 ;;
    *) kube_cmds+=("$extra") ;;
  esac
done

missing=()
for c in "${kube_cmds[@]}"; do [ -x "$bin/$c" ] || missing+=("$c"); done

if [ ${#missing[@]} -gt 0 ]; then
  # k8s.io/kubernetes replaces every k8s.io/* staging module with a local
  # folder, so `go install` refuses it. A wrapper module that requires it and
  # points each staging module at its published v0.x.y twin builds it.
  wrap="$work/kubernetes-$KUBE_VERSION"
  mkdir -p "$wrap"
  if [ ! -f "$wrap/.ready" ]; then
    log "resolving k8s.io/kubernetes $KUBE_VERSION"
    modfile="$(cd "$wrap" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
    [ -f "$modfile" ] || { log "cannot download k8s.io/kubernetes@$KUBE_VERSION from the Go module proxy"; exit 1; }
    staging_version="v0.${KUBE_VERSION#v1.}"
    gover="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$modfile")"
    {
      echo "module gossamer.dev/kube-build"
      echo
      echo "go $gover"
      echo
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      echo
      echo "replace ("
      sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*$#\t\1 => \1 '"$staging_version"'#p' "$modfile"
      echo ")"
    } >"$wrap/go.mod"
    printf 'package build\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n' >"$wrap/tools.go"
    (cd "$wrap" && { go mod tidy >/dev/null 2>&1 || true; } && go mod download all)
    touch "$wrap/.ready"
  fi
  minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for kv in \
    "gitVersion=$KUBE_VERSION" "gitMajor=1" "gitMinor=$minor" \
    "gitCommit=0000000000000000000000000000000000000000" "gitTreeState=clean" \
    "buildDate=1970-01-01T00:00:00Z"; do
    ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  pkgs=()
  for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "building ${missing[*]} $KUBE_VERSION (cold: about 20 minutes on 2 cores)"
  start=$SECONDS
  tmp="$bin/.tmp.$$"; mkdir -p "$tmp"
  (cd "$wrap" && CGO_ENABLED=0 nice_go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  mv "$tmp"/* "$bin/" && rmdir "$tmp"
  log "built ${missing[*]} in $((SECONDS - start)) s"
fi

if [ ! -x "$bin/etcd" ]; then
  wrap="$work/etcd-$ETCD_VERSION"
  mkdir -p "$wrap"
  cp "$here/etcd/main.go" "$wrap/main.go"
  if [ ! -f "$wrap/go.mod" ]; then
    printf 'module gossamer.dev/etcd-build\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$wrap/go.mod"
    (cd "$wrap" && go mod tidy >/dev/null)
  fi
  log "building etcd $ETCD_VERSION"
  start=$SECONDS
  (cd "$wrap" && CGO_ENABLED=0 nice_go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" . && mv "$bin/etcd.tmp" "$bin/etcd")
  log "built etcd in $((SECONDS - start)) s"
fi

if [ ! -x "$bin/helm" ]; then
  log "building helm $HELM_VERSION"
  start=$SECONDS
  gobin="$bin/.helm.$$"
  GOBIN="$gobin" CGO_ENABLED=0 nice_go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  mv "$gobin/helm" "$bin/helm" && rmdir "$gobin"
  log "built helm in $((SECONDS - start)) s"
fi

# The bin folder's name does not carry COREDNS_VERSION (a warm cache stays
# warm), so a stamp beside the binary does: a new version or plugin list in
# tests/kube/coredns/main.go rebuilds it.
coredns_stamp="$COREDNS_VERSION $(cksum <"$here/coredns/main.go" | cut -d' ' -f1)"
if [ "$want_coredns" = 1 ] && { [ ! -x "$bin/coredns" ] || [ "$(cat "$bin/.coredns.stamp" 2>/dev/null)" != "$coredns_stamp" ]; }; then
  # CoreDNS's own main package links every plugin and their cloud SDKs;
  # tests/kube/coredns/main.go links the few a test cluster needs. Never
  # `go mod download all` here: the module graph names those SDKs too.
  wrap="$work/coredns-$COREDNS_VERSION"
  mkdir -p "$wrap"
  if [ ! -f "$wrap/go.sum" ] || ! cmp -s "$here/coredns/main.go" "$wrap/main.go"; then
    cp "$here/coredns/main.go" "$wrap/main.go"
    # The k8s.io client modules at the cluster's own patch release (never
    # below what CoreDNS asks for: Go takes the higher) share the module and
    # build caches with the Kubernetes binaries.
    staging_version="v0.${KUBE_VERSION#v1.}"
    printf 'module gossamer.dev/coredns-build\n\ngo 1.26\n\nrequire (\n\tgithub.com/coredns/coredns %s\n\tk8s.io/api %s\n\tk8s.io/apimachinery %s\n\tk8s.io/client-go %s\n)\n' \
      "$COREDNS_VERSION" "$staging_version" "$staging_version" "$staging_version" >"$wrap/go.mod"
    rm -f "$wrap/go.sum"
    log "resolving github.com/coredns/coredns $COREDNS_VERSION"
    (cd "$wrap" && go mod tidy >/dev/null)
  fi
  log "building coredns $COREDNS_VERSION"
  start=$SECONDS
  (cd "$wrap" && CGO_ENABLED=0 nice_go build -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.gitTag=$COREDNS_VERSION" \
    -o "$bin/coredns.tmp" . && mv "$bin/coredns.tmp" "$bin/coredns")
  echo "$coredns_stamp" >"$bin/.coredns.stamp"
  log "built coredns in $((SECONDS - start)) s"
fi

wanted=("${kube_cmds[@]}" etcd helm)
[ "$want_coredns" = 0 ] || wanted+=(coredns)
for c in "${wanted[@]}"; do
  [ -x "$bin/$c" ] || { log "missing $bin/$c after the build"; exit 1; }
done
echo "$bin"
