#!/usr/bin/env bash
# Undoes what a test node (tests/harness/kube/node.rs: containerd, kubelet,
# kube-proxy, CNI bridge) changed on the host, and keeps two nodes from
# running on one host at once (they would share the fixed paths, ports and
# firewall chains below).
#
#   node-cleanup.sh watch STATE_DIR BRIDGE
#       Takes the host-wide node lock (waits for another node's cleanup),
#       records the host's state before the node starts in
#       STATE_DIR/baseline, prints "ready" on stdout, then waits for EOF on
#       stdin (the test process closed it, or died) and cleans up. Ignores
#       SIGINT/SIGTERM/SIGHUP so a Ctrl-C of the test run still cleans up.
#   node-cleanup.sh clean STATE_DIR BRIDGE
#       Cleans up at once (by hand, after a crash), from STATE_DIR/baseline.
#
# Cleaning up, in order: kill the node's processes (kubelet, kube-proxy,
# kube-scheduler, containerd and its shims: any of those whose command line
# names STATE_DIR) and every process in a `kubepods` cgroup; unmount
# everything under STATE_DIR and the kubelet's and containerd's fixed
# paths; delete BRIDGE; delete the KUBE-*/CNI-* iptables and ip6tables
# chains that were not there before (and the rules jumping to them), then
# the nftables tables iptables-nft created for them;
# restore the sysctls the kubelet, kube-proxy and the bridge plugin change;
# remove the kubepods cgroups and the fixed paths that did not exist
# before; remove STATE_DIR. Every step runs even if an earlier one failed;
# the exit status is 1 if anything is left.
set -uo pipefail

log() { printf '[node-cleanup] %s\n' "$*" >&2; }

mode=${1:-}
state=${2:-}
bridge=${3:-}
if [ -z "$mode" ] || [ -z "$state" ] || [ -z "$bridge" ]; then
  echo "usage: $0 watch|clean STATE_DIR BRIDGE" >&2
  exit 2
fi
case "$state" in
  /*/*) ;;
  *) log "STATE_DIR must be an absolute path below a folder: $state"; exit 2 ;;
esac

# Fixed host paths containerd, runc, CNI, iptables and the kubelet use
# whatever their configuration says.
fixed_paths=(
  /run/containerd /var/lib/cni /var/lib/kubelet /var/log/pods
  /var/log/containers /run/netns /run/xtables.lock /opt/containerd
  /etc/kubernetes /var/lib/containerd
)
# Sysctls the kubelet (kernel defaults), kube-proxy and the bridge plugin
# (ip_forward) set.
sysctls=(
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.ipv4.conf.all.route_localnet net.ipv6.conf.all.forwarding
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait
)
families=()
for f in iptables ip6tables; do
  command -v "$f-save" >/dev/null 2>&1 && families+=("$f")
done
tables=(filter nat mangle raw)

# "FAMILY NAME" of the ip/ip6 nftables tables iptables-nft, the kubelet and
# kube-proxy create (iptables-nft creates a table on first use; an empty
# one is left behind by removing the chains alone).
list_nft_tables() {
  command -v nft >/dev/null 2>&1 || return 0
  nft list tables 2>/dev/null | sed -n 's/^table \(ip6\?\) \(filter\|nat\|mangle\|raw\|security\|kube-proxy\)$/\1 \2/p'
}

# "FAMILY TABLE CHAIN" for every KUBE-*/CNI-* chain now.
list_chains() {
  local f t
  for f in "${families[@]}"; do
    for t in "${tables[@]}"; do
      "$f-save" -t "$t" 2>/dev/null | sed -n "s/^:\(\(KUBE-\|CNI-\)[^ ]*\) .*/$f $t \1/p"
    done
  done
}

record_baseline() {
  local b="$state/baseline" name p
  : >"$b.tmp"
  for name in "${sysctls[@]}"; do
    p="/proc/sys/${name//.//}"
    [ -r "$p" ] && printf 'sysctl %s %s\n' "$name" "$(tr '\t' ' ' <"$p")" >>"$b.tmp"
  done
  for p in "${fixed_paths[@]}"; do
    [ -e "$p" ] || [ -L "$p" ] && printf 'path %s\n' "$p" >>"$b.tmp"
  done
  list_chains | sed 's/^/chain /' >>"$b.tmp"
  list_nft_tables | sed 's/^/nft-table /' >>"$b.tmp"
  for p in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$p" ] && printf 'cgroup %s\n' "$p" >>"$b.tmp"
  done
  mv "$b.tmp" "$b"
}

in_baseline() { grep -qxF -- "$1" "$state/baseline" 2>/dev/null; }

kill_processes() {
  local pid exe cmd
  local -A killed=()
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    case "${exe##*/}" in
      kubelet | kube-proxy | kube-scheduler | coredns | containerd | containerd-shim*) ;;
      *) continue ;;
    esac
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    case "$cmd" in
      *"$state"*) kill -KILL "$pid" 2>/dev/null && killed[$pid]=1 ;;
    esac
  done
  # Containers: every process in the kubelet's cgroups (any hierarchy; a
  # process is listed in each).
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && killed[$pid]=1
  done < <(find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
  log "killed ${#killed[@]} processes"
}

# Mount points under our paths, deepest first.
our_mounts() {
  awk '{print $5}' /proc/self/mountinfo | while read -r m; do
    case "$m" in
      "$state"/* | /run/containerd/* | /var/lib/kubelet/* | /run/netns/*) echo "$m" ;;
    esac
  done | sort -r -u
}

unmount_all() {
  local m tries
  for tries in 1 2 3; do
    [ -z "$(our_mounts)" ] && return 0
    for m in $(our_mounts); do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
    done
    [ "$tries" -lt 3 ] && sleep 0.2
  done
}

remove_chains() {
  local f t c line
  local -a new=()
  while read -r f t c; do
    [ -n "$c" ] || continue
    in_baseline "chain $f $t $c" || new+=("$f $t $c")
  done < <(list_chains)
  [ ${#new[@]} -eq 0 ] && return 0
  # Rules in other chains jumping to a new chain go first.
  for entry in "${new[@]}"; do
    read -r f t c <<<"$entry"
    "$f-save" -t "$t" 2>/dev/null | grep -E -- "^-A [^ ]+ .*-j $c( |\$)" | while read -r line; do
      eval "\"$f\" -w 5 -t \"$t\" -D ${line#-A }" 2>/dev/null
    done
  done
  for entry in "${new[@]}"; do
    read -r f t c <<<"$entry"
    "$f" -w 5 -t "$t" -F "$c" 2>/dev/null
  done
  for entry in "${new[@]}"; do
    read -r f t c <<<"$entry"
    "$f" -w 5 -t "$t" -X "$c" 2>/dev/null || log "cannot delete $f -t $t chain $c"
  done
  log "removed ${#new[@]} firewall chains"
}

remove_nft_tables() {
  local family name n=0
  while read -r family name; do
    [ -n "$name" ] || continue
    in_baseline "nft-table $family $name" && continue
    if nft delete table "$family" "$name" 2>/dev/null; then
      n=$((n + 1))
    else
      log "cannot delete nftables table $family $name"
    fi
  done < <(list_nft_tables)
  [ "$n" -gt 0 ] && log "removed $n nftables tables"
  return 0
}

restore_sysctls() {
  local kind name value p
  while read -r kind name value; do
    [ "$kind" = sysctl ] || continue
    p="/proc/sys/${name//.//}"
    [ -w "$p" ] || continue
    if [ "$(tr '\t' ' ' <"$p")" != "$value" ]; then
      if echo "$value" >"$p" 2>/dev/null; then
        log "restored $name = $value"
      else
        log "cannot restore $name = $value"
      fi
    fi
  done <"$state/baseline"
}

remove_cgroups() {
  local root
  for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$root" ] || continue
    in_baseline "cgroup $root" && continue
    find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$root" ] && log "cannot remove cgroup $root"
  done
}

remove_paths() {
  local p
  for p in "${fixed_paths[@]}"; do
    if { [ -e "$p" ] || [ -L "$p" ]; } && ! in_baseline "path $p"; then
      rm -rf -- "$p" 2>/dev/null || log "cannot remove $p"
    fi
  done
}

clean() {
  if [ ! -f "$state/baseline" ]; then
    log "no baseline in $state: nothing was started"
    return 0
  fi
  kill_processes
  # Killed processes leave their cgroups and mounts once reaped.
  local _
  for _ in $(seq 1 50); do
    [ -z "$(find /sys/fs/cgroup/*/kubepods -name cgroup.procs -size +0 2>/dev/null | head -n 1)" ] && break
    kill_processes >/dev/null 2>&1
    sleep 0.1
  done
  unmount_all
  ip link show "$bridge" >/dev/null 2>&1 && { ip link delete "$bridge" || log "cannot delete bridge $bridge"; }
  remove_chains
  remove_nft_tables
  restore_sysctls
  remove_cgroups
  remove_paths
  # The state folder goes last: it holds the baseline.
  local left
  left=$(our_mounts)
  if [ -n "$left" ]; then
    log "still mounted, keeping $state: $left"
    return 1
  fi
  rm -rf -- "$state"
  log "clean"
}

case "$mode" in
  watch)
    trap '' INT TERM HUP
    exec 9>>"${TMPDIR:-/tmp}/gossamer-node.lock"
    if ! flock -n 9; then
      log "another test node runs on this host; waiting for it to finish"
      flock 9
    fi
    mkdir -p "$state"
    record_baseline
    echo ready
    exec 1>&2
    while read -r _; do :; done
    log "test process done: cleaning up $state"
    clean
    ;;
  clean)
    exec 9>>"${TMPDIR:-/tmp}/gossamer-node.lock"
    flock 9
    clean
    ;;
  *)
    echo "usage: $0 watch|clean STATE_DIR BRIDGE" >&2
    exit 2
    ;;
esac
