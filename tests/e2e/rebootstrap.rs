//! Sentinel-driven re-bootstrap with real processes and a real cut: one
//! sidecar runs in its own network namespace, joined to the host by a veth
//! pair, and the test takes that link down for longer than the cluster
//! sentinel's TTL. The cut-off sidecar must say it is partitioned and, once
//! the link is back, find the cluster again with no command from outside,
//! also when every member it knew is gone and only newer ones answer.
//!
//! Needs root and iproute2 (as the real-cluster tests do); it fails, never
//! skips, without them.

// Wall-clock deadlines: this drives real processes.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::time::{Duration, Instant};

use gossamer_proto::infos::v1 as ipb;
use gossamer_tests::{free_ports, wait_until, Flags, Kind, MemberState, Netns, Peer};
use ipb::infos_client::InfosClient;

/// Sentinel TTL of every sidecar here: the cut lasts longer than this.
const TTL_MS: u64 = 4000;
const T: Duration = Duration::from_secs(60);

fn flags(seed: &str) -> Flags {
    Flags::fast().seed(seed).arg("--sentinel-ttl-ms", TTL_MS)
}

/// A sidecar on the host's end of the link.
fn host_peer(net: &Netns, name: &str, port: u16, seed: &str) -> Peer {
    let addr = format!("{}:{port}", net.host_ip());
    Peer::spawn_in(Kind::Rust, name, &addr, None, flags(seed)).unwrap()
}

/// The sidecar inside the namespace, serving its API on its own address.
fn cut_off_peer(net: &Netns, seed: &str) -> (Peer, String) {
    let [port, api] = free_ports(2)[..] else {
        unreachable!()
    };
    let addr = format!("{}:{port}", net.ns_ip());
    let api = format!("{}:{api}", net.ns_ip());
    let f = flags(seed).arg("--api-listen", &api);
    let peer = Peer::spawn_in(Kind::Rust, "x", &addr, Some(net.name()), f).unwrap();
    (peer, format!("http://{api}"))
}

fn sees_alive(p: &Peer, names: &[&str]) -> Result<(), String> {
    p.with_view(|v| {
        let missing: Vec<_> = names
            .iter()
            .filter(|n| v.state_of(n) != Some(MemberState::Alive))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{} does not see {missing:?} alive", p.name()))
        }
    })
}

fn log_has(p: &Peer, text: &str) -> Result<(), String> {
    let log = fs::read_to_string(p.log_path()).unwrap_or_default();
    if log.contains(text) {
        Ok(())
    } else {
        Err(format!("{} has not logged {text:?}", p.name()))
    }
}

async fn status(api: &str) -> Result<ipb::StatusResponse, String> {
    let mut c = InfosClient::connect(api.to_string())
        .await
        .map_err(|e| format!("cannot reach {api}: {e}"))?;
    c.status(ipb::StatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|e| format!("Status on {api}: {e}"))
}

/// Waits on a blocking probe without stalling the runtime's other tasks.
async fn wait<T: Send + 'static>(
    what: &'static str,
    probe: impl FnMut() -> Result<T, String> + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(move || wait_until(T, what, probe))
        .await
        .unwrap()
}

async fn not_partitioned(api: &str) {
    let start = Instant::now();
    loop {
        match status(api).await {
            Ok(s) if !s.partitioned => return,
            last if start.elapsed() > T => panic!("{api} still partitioned: {last:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Node `x` in the namespace and `a`, `b`, `c` on the host (`a` the seed of
/// all) converge; then the link is cut past the sentinel TTL, and `x` must
/// report itself partitioned while the others see it dead.
async fn converge_then_cut(net: &Netns, seed_port: u16) -> (Peer, String, Vec<Peer>) {
    let seed = format!("{}:{seed_port}", net.host_ip());
    let a = host_peer(net, "a", seed_port, &seed);
    let others = [("b", free_ports(1)[0]), ("c", free_ports(1)[0])]
        .map(|(n, port)| host_peer(net, n, port, &seed));
    let (x, api) = cut_off_peer(net, &seed);
    let hosts: Vec<Peer> = std::iter::once(a).chain(others).collect();
    for p in hosts.iter().chain([&x]) {
        p.wait_for(|v| v.alive().len() == 4, T).unwrap();
    }
    not_partitioned(&api).await;

    net.cut().unwrap();
    let cut = Instant::now();
    for p in &hosts {
        p.wait_for(|v| v.state_of("x") == Some(MemberState::Dead), T)
            .unwrap();
    }
    // Its log says so, and it keeps saying it while the cut lasts.
    let probe_x = x.log_path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        wait_until(T, "x logs that it is partitioned", || {
            let log = fs::read_to_string(&probe_x).unwrap_or_default();
            if log.contains("partitioned: sentinel expired") {
                Ok(())
            } else {
                Err(())
            }
        })
    })
    .await
    .unwrap();
    eprintln!(
        "x says it is partitioned {:.1} s after the cut",
        cut.elapsed().as_secs_f64()
    );
    (x, api, hosts)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_off_sidecar_rejoins_after_the_heal_without_its_seed() {
    let net = Netns::create().unwrap();
    let seed_port = free_ports(1)[0];
    let (x, api, mut hosts) = converge_then_cut(&net, seed_port).await;

    // The seed goes for good, and a newer member joins through b.
    hosts[0].kill();
    let d = host_peer(&net, "d", free_ports(1)[0], hosts[1].addr());
    d.wait_for(|v| v.alive().len() == 3, T).unwrap();

    net.heal().unwrap();
    let healed = Instant::now();
    not_partitioned(&api).await;
    eprintln!(
        "heal -> x sees the sentinel: {:.2} s",
        healed.elapsed().as_secs_f64()
    );
    for p in [&hosts[1], &hosts[2], &d] {
        p.wait_for(|v| v.state_of("x") == Some(MemberState::Alive), T)
            .unwrap();
    }
    wait_until(T, "x sees b, c and d alive", || {
        sees_alive(&x, &["b", "c", "d"])
    });
    eprintln!(
        "heal -> all see all: {:.2} s",
        healed.elapsed().as_secs_f64()
    );
    log_has(&x, "partitioned: sentinel expired").unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_off_sidecar_rejoins_when_every_member_it_knew_is_gone() {
    let net = Netns::create().unwrap();
    let seed_port = free_ports(1)[0];
    let (x, api, mut hosts) = converge_then_cut(&net, seed_port).await;

    // Every member x knew goes for good. A newer Pod takes the seed's
    // address (as a replacement behind a Service would), and two more
    // join it: only members x has never seen are left.
    for p in &mut hosts {
        p.kill();
    }
    let seed = format!("{}:{seed_port}", net.host_ip());
    let d = wait("a new sidecar binds the seed's address", {
        let net_host = net.host_ip();
        move || {
            let addr = format!("{net_host}:{seed_port}");
            Peer::spawn_in(Kind::Rust, "d", &addr, None, flags(&addr)).map_err(|e| e.to_string())
        }
    })
    .await;
    let newer: Vec<Peer> = ["e", "f"]
        .iter()
        .map(|n| host_peer(&net, n, free_ports(1)[0], &seed))
        .collect();
    for p in newer.iter().chain([&d]) {
        p.wait_for(|v| v.alive().len() == 3, T).unwrap();
    }
    // x is still cut off and still says so.
    assert!(x.with_view(|v| v.state_of("d").is_none()));

    net.heal().unwrap();
    let healed = Instant::now();
    not_partitioned(&api).await;
    eprintln!(
        "heal -> x sees the sentinel: {:.2} s",
        healed.elapsed().as_secs_f64()
    );
    wait_until(T, "x sees d, e and f alive", || {
        sees_alive(&x, &["d", "e", "f"])
    });
    for p in newer.iter().chain([&d]) {
        p.wait_for(|v| v.state_of("x") == Some(MemberState::Alive), T)
            .unwrap();
    }
    eprintln!(
        "heal -> all see all: {:.2} s",
        healed.elapsed().as_secs_f64()
    );
}
