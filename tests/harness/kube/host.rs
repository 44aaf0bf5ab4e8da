//! What a test node leaves on the host, looked at independently of the
//! cleanup script (`tests/kube/node-cleanup.sh`) that removes it: the
//! script records the host before the node starts (its `baseline` file),
//! and [`Baseline::leftovers`] compares the host after the cleanup with it.

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The paths the kubelet, containerd, runc, CNI and iptables use whatever
/// their configuration says; mounts below them are the node's.
const FIXED_MOUNT_ROOTS: [&str; 3] = ["/run/containerd", "/var/lib/kubelet", "/run/netns"];
/// Programs of the node, found by their executable's name.
const NODE_PROGRAMS: [&str; 6] = [
    "kubelet",
    "kube-proxy",
    "kube-scheduler",
    "coredns",
    "containerd",
    "containerd-shim-runc-v2",
];

/// The host before the node started, as the cleanup script recorded it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Baseline {
    sysctls: Vec<(String, String)>,
    paths: BTreeSet<String>,
    chains: BTreeSet<String>,
    nft_tables: BTreeSet<String>,
    cgroups: BTreeSet<String>,
    /// Every fixed path the script watches (from its own list).
    watched_paths: Vec<String>,
}

impl Baseline {
    /// Reads `<state>/baseline`; `watched_paths` is the script's list of
    /// fixed paths.
    pub(crate) fn read(file: &Path, watched_paths: &[&str]) -> Result<Baseline> {
        let text = fs::read_to_string(file).map_err(|e| {
            Error::new(format!(
                "cannot read the host baseline {}: {e}",
                file.display()
            ))
        })?;
        let mut b = Baseline {
            watched_paths: watched_paths.iter().map(|p| p.to_string()).collect(),
            ..Baseline::default()
        };
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("sysctl", rest)) => {
                    let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                    b.sysctls.push((name.to_string(), value.to_string()));
                }
                Some(("path", p)) => {
                    b.paths.insert(p.to_string());
                }
                Some(("chain", c)) => {
                    b.chains.insert(c.to_string());
                }
                Some(("nft-table", t)) => {
                    b.nft_tables.insert(t.to_string());
                }
                Some(("cgroup", c)) => {
                    b.cgroups.insert(c.to_string());
                }
                _ => {}
            }
        }
        Ok(b)
    }

    /// Everything the node left: processes, mounts, the bridge, network
    /// namespaces, firewall chains, changed sysctls, cgroups, fixed paths
    /// and the state folder. Empty when the host is as it was.
    pub(crate) fn leftovers(&self, state: &Path, bridge: &str) -> Vec<String> {
        let mut left = Vec::new();
        let state_str = state.to_string_lossy().into_owned();
        left.extend(
            node_processes(&state_str)
                .into_iter()
                .map(|p| format!("process {p}")),
        );
        left.extend(
            kubepods_processes()
                .into_iter()
                .map(|p| format!("pod process {p}")),
        );
        for m in mounts() {
            let ours = m.starts_with(&format!("{state_str}/"))
                || FIXED_MOUNT_ROOTS
                    .iter()
                    .any(|root| m.starts_with(&format!("{root}/")));
            if ours {
                left.push(format!("mount {m}"));
            }
        }
        if Path::new("/sys/class/net").join(bridge).exists() {
            left.push(format!("bridge {bridge}"));
        }
        if let Ok(entries) = fs::read_dir("/run/netns") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("cni-") {
                    left.push(format!("network namespace /run/netns/{name}"));
                }
            }
        }
        for chain in firewall_chains() {
            if !self.chains.contains(&chain) {
                left.push(format!("firewall chain {chain}"));
            }
        }
        for table in nft_tables() {
            if !self.nft_tables.contains(&table) {
                left.push(format!("nftables table {table}"));
            }
        }
        for (name, before) in &self.sysctls {
            let now = read_sysctl(name);
            if now.as_deref() != Some(before.as_str()) {
                left.push(format!("sysctl {name} = {now:?}, was {before}"));
            }
        }
        for c in kubepods_cgroups() {
            if !self.cgroups.contains(&c) {
                left.push(format!("cgroup {c}"));
            }
        }
        for p in &self.watched_paths {
            let exists = fs::symlink_metadata(p).is_ok();
            if exists && !self.paths.contains(p) {
                left.push(format!("path {p}"));
            }
        }
        if state.exists() {
            left.push(format!("state folder {}", state.display()));
        }
        left
    }
}

/// `pid exe cmdline` of the node's programs whose command line names the
/// state folder.
fn node_processes(state: &str) -> Vec<String> {
    let mut found = Vec::new();
    for pid in pids() {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let Ok(exe) = fs::read_link(proc.join("exe")) else {
            continue;
        };
        let name = exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !NODE_PROGRAMS.contains(&name.as_str()) {
            continue;
        }
        let cmd = fs::read(proc.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cmd.contains(state) {
            found.push(format!("{pid} {}", cmd.trim_end()));
        }
    }
    found
}

fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every `kubepods` cgroup folder, in any hierarchy.
fn kubepods_cgroups() -> Vec<String> {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup/kubepods")];
    if let Ok(d) = fs::read_dir("/sys/fs/cgroup") {
        roots.extend(d.flatten().map(|e| e.path().join("kubepods")));
    }
    roots
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| p.display().to_string())
        .collect()
}

/// PIDs in any cgroup below a `kubepods` folder.
fn kubepods_processes() -> Vec<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(
                procs
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("{l} in {}", dir.display())),
            );
        }
        if let Ok(d) = fs::read_dir(dir) {
            for e in d.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for root in kubepods_cgroups() {
        walk(Path::new(&root), &mut out);
    }
    out.into_iter().collect()
}

/// Mount points of this mount namespace.
fn mounts() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `FAMILY TABLE CHAIN` of every KUBE-*/CNI-* chain, as the script writes
/// them.
fn firewall_chains() -> Vec<String> {
    let mut chains = Vec::new();
    for family in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle", "raw"] {
            let Ok(out) = Command::new(format!("{family}-save"))
                .args(["-t", table])
                .output()
            else {
                continue;
            };
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let Some(rest) = line.strip_prefix(':') else {
                    continue;
                };
                let chain = rest.split(' ').next().unwrap_or("");
                if chain.starts_with("KUBE-") || chain.starts_with("CNI-") {
                    chains.push(format!("{family} {table} {chain}"));
                }
            }
        }
    }
    chains
}

/// `FAMILY NAME` of the ip/ip6 nftables tables that iptables-nft and
/// kube-proxy create (none without `nft`).
fn nft_tables() -> Vec<String> {
    const NAMES: [&str; 6] = ["filter", "nat", "mangle", "raw", "security", "kube-proxy"];
    let Ok(out) = Command::new("nft").args(["list", "tables"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("table ")?.split(' ');
            let (family, name) = (words.next()?, words.next()?);
            let ours = matches!(family, "ip" | "ip6") && NAMES.contains(&name);
            ours.then(|| format!("{family} {name}"))
        })
        .collect()
}

fn read_sysctl(name: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    fs::read_to_string(path)
        .ok()
        .map(|v| v.trim_end_matches('\n').replace('\t', " "))
}

/// The host's address towards its default route: the node's InternalIP
/// (the kubelet refuses a loopback address). No packet is sent.
pub(crate) fn host_ip() -> Result<Ipv4Addr> {
    let probe = || -> std::io::Result<IpAddr> {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        s.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(IpAddr::V4(ip)) if !ip.is_loopback() && !ip.is_unspecified() => Ok(ip),
        other => Err(Error::new(format!(
            "cannot find this host's IPv4 address for the node (got {other:?}); the node \
             needs a non-loopback address with a default route"
        ))),
    }
}
