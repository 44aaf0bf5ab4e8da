//! A network namespace joined to the host by a veth pair, for tests that
//! cut a peer off the network and heal it again (needs root and `ip`).
//!
//! The host's end of the pair and the namespace's end share a /30 of
//! 198.18.0.0/15, the range set aside for network tests (RFC 2544), so the
//! peers talk only to addresses this harness created. Peers on the host
//! bind the host's end; a peer started with
//! [`crate::Peer::spawn_in`]`(.., Some(netns.name()), ..)` binds the
//! namespace's end. [`Netns::cut`] takes the namespace's end of the link
//! down: the host's end loses its carrier, nothing crosses, and the host's
//! own address keeps working locally (as an empty Docker bridge's does), so
//! the peers on the host still reach each other.
//!
//! Dropping it deletes the pair and the namespace, also when a test fails.
//! The first `ip netns add` on a host also makes `/run/netns` a mount point
//! of its own (and the folder, if missing); when the last namespace of this
//! process goes and the folder is empty, that is undone too, so the host is
//! left as the test found it.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

const NETNS_DIR: &str = "/run/netns";

/// What `/run/netns` was before this process made its first namespace,
/// and how many of its namespaces exist.
struct Host {
    users: usize,
    dir_was_there: bool,
    mount_was_there: bool,
}

static HOST: Mutex<Option<Host>> = Mutex::new(None);

fn is_mount_point(path: &str) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path))
}

fn is_empty_dir(path: &str) -> bool {
    fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

use crate::error::{Error, Result};

/// A namespace `gossamer-cut-<pid>-<n>` with a veth pair to the host.
#[derive(Debug)]
pub struct Netns {
    name: String,
    host_if: String,
    ns_if: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
}

/// Runs `ip args`; an error names the command and its stderr.
fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::new(format!("cannot run `ip {}`: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::new(format!(
            "`ip {}` failed ({}): {} (network namespaces need root and iproute2)",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Netns {
    /// Creates the namespace and the pair, both ends up and addressed.
    ///
    /// # Errors
    /// If any `ip` command fails (not root, no iproute2); whatever was made
    /// is removed again.
    pub fn create() -> Result<Netns> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let taken = ip(&["-o", "-4", "addr", "show"])?;
        // 32,768 blocks of four addresses; the first free one from a
        // starting point that differs between processes.
        let start = pid
            .wrapping_mul(7919)
            .wrapping_add(seq.wrapping_mul(104_729));
        let block = (0..32_768u32)
            .map(|i| (start.wrapping_add(i)) % 32_768)
            .find(|b| !taken.contains(&format!(" {}/", block_ip(*b, 1))))
            .ok_or_else(|| Error::new("no free /30 left in 198.18.0.0/15"))?;
        let mut host = HOST.lock().unwrap_or_else(PoisonError::into_inner);
        let h = host.get_or_insert_with(|| Host {
            users: 0,
            dir_was_there: Path::new(NETNS_DIR).exists(),
            mount_was_there: is_mount_point(NETNS_DIR),
        });
        h.users += 1;
        drop(host);
        // From here on, Drop removes what exists.
        let netns = Netns {
            name: format!("gossamer-cut-{pid}-{seq}"),
            host_if: format!("gsc{}{seq}h", pid % 100_000),
            ns_if: format!("gsc{}{seq}n", pid % 100_000),
            host_ip: block_ip(block, 1),
            ns_ip: block_ip(block, 2),
        };
        ip(&["netns", "add", &netns.name])?;
        netns
            .setup()
            .map_err(|e| e.context("creating a veth pair"))?;
        Ok(netns)
    }

    fn setup(&self) -> Result<()> {
        let (h, n) = (&self.host_if, &self.ns_if);
        ip(&[
            "link", "add", h, "type", "veth", "peer", "name", n, "netns", &self.name,
        ])?;
        ip(&["addr", "add", &format!("{}/30", self.host_ip), "dev", h])?;
        ip(&["link", "set", h, "up"])?;
        let addr = format!("{}/30", self.ns_ip);
        ip(&["-n", &self.name, "addr", "add", &addr, "dev", n])?;
        ip(&["-n", &self.name, "link", "set", n, "up"])?;
        ip(&["-n", &self.name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's end of the link; peers on the host bind it.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The namespace's end of the link.
    pub fn ns_ip(&self) -> Ipv4Addr {
        self.ns_ip
    }

    /// Cuts the link: nothing crosses until [`Netns::heal`].
    ///
    /// # Errors
    /// If `ip` fails.
    pub fn cut(&self) -> Result<()> {
        ip(&["-n", &self.name, "link", "set", &self.ns_if, "down"]).map(drop)
    }

    /// Restores the link.
    ///
    /// # Errors
    /// If `ip` fails.
    pub fn heal(&self) -> Result<()> {
        ip(&["-n", &self.name, "link", "set", &self.ns_if, "up"]).map(drop)
    }
}

fn block_ip(block: u32, host: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + block * 4 + host)
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; the namespace goes once no
        // process is left in it (the test's peers are dropped first).
        let _ = ip(&["link", "del", &self.host_if]);
        if Path::new(NETNS_DIR).join(&self.name).exists() {
            if let Err(e) = ip(&["netns", "del", &self.name]) {
                eprintln!("netns: cannot delete {}: {e}", self.name);
            }
        }
        let mut host = HOST.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(h) = host.as_mut() else { return };
        h.users -= 1;
        if h.users > 0 || !is_empty_dir(NETNS_DIR) {
            return;
        }
        if !h.mount_was_there && is_mount_point(NETNS_DIR) {
            let ok = Command::new("umount")
                .arg(NETNS_DIR)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("netns: cannot unmount {NETNS_DIR}");
            }
        }
        if !h.dir_was_there {
            let _ = fs::remove_dir(NETNS_DIR);
        }
        *host = None;
    }
}
