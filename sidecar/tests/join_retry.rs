//! The join loop against real nodes on loopback: a seed that neither
//! resolves nor answers yet is retried until it does, and a node that loses
//! everyone joins again. The resolver is injected, so "does not resolve
//! yet" needs no DNS server.

#![allow(clippy::disallowed_methods)] // a test of the shell waits on the clock

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gossamer_sidecar::join::{self, Backoff, JoinStatus, Resolve};
use gossamer_sidecar::membership::{Config, NodeStatus};
use gossamer_sidecar::runtime::{self, NodeHandle};
use tokio::sync::watch;

/// Resolves `seed.test:PORT` to loopback only once `up` is set; before,
/// like a headless Service without ready Pods, it does not resolve.
#[derive(Clone)]
struct LateName {
    up: Arc<AtomicBool>,
}

impl Resolve for LateName {
    async fn resolve(&self, peer: &str) -> std::io::Result<Vec<SocketAddr>> {
        let port = peer
            .strip_prefix("seed.test:")
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| std::io::Error::other(format!("unexpected peer {peer}")))?;
        if self.up.load(Ordering::SeqCst) {
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such host",
            ))
        }
    }
}

async fn node(name: &str, port: u16) -> NodeHandle {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cfg = Config::local(name, addr);
    cfg.probe_interval = Duration::from_millis(200);
    cfg.probe_timeout = Duration::from_millis(100);
    cfg.gossip_interval = Duration::from_millis(50);
    let (n, _events) = runtime::start(cfg, addr, 7).await.expect("node starts");
    n
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn alive_others(n: &NodeHandle) -> usize {
    n.members()
        .await
        .iter()
        .filter(|m| m.name != n.name() && m.status == NodeStatus::Alive)
        .count()
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_that_neither_resolves_nor_answers_yet_is_retried_until_it_does() {
    let seed_port = free_port();
    let a = node("a", free_port()).await;
    let up = Arc::new(AtomicBool::new(false));
    let status = Arc::new(JoinStatus::default());
    let (_tx, rx) = watch::channel(vec![format!("seed.test:{seed_port}")]);
    let fast = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(300),
        jitter: 0.2,
    };
    tokio::spawn(join::run(
        a.clone(),
        rx,
        LateName { up: up.clone() },
        fast,
        status.clone(),
    ));

    // The name does not resolve: tries fail, the loop goes on.
    wait_until("two failed tries", Duration::from_secs(10), async || {
        status.failures() >= 2
    })
    .await;
    assert!(!status.joined());
    assert!(status.unresolved() >= 2);
    assert!(
        status.last_error().unwrap().contains("does not resolve"),
        "{:?}",
        status.last_error()
    );

    // It resolves, but nobody listens there yet.
    up.store(true, Ordering::SeqCst);
    let failed = status.failures();
    wait_until(
        "a try that reached no seed",
        Duration::from_secs(10),
        async || {
            status.failures() > failed
                && status
                    .last_error()
                    .is_some_and(|e| e.contains("no seed answered"))
        },
    )
    .await;
    assert!(!status.joined());

    // The seed comes up: the next try joins, with no call from outside.
    let seed = node("seed", seed_port).await;
    wait_until("a to see the seed", Duration::from_secs(10), async || {
        alive_others(&a).await == 1
    })
    .await;
    wait_until(
        "the loop to report joined",
        Duration::from_secs(5),
        async || status.joined(),
    )
    .await;
    assert_eq!(status.last_error(), None);
    assert_eq!(alive_others(&seed).await, 1);
    a.shutdown();
    seed.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_everyone_joins_again_and_a_new_peer_list_wakes_it() {
    let a = node("a", free_port()).await;
    let b = node("b", free_port()).await;
    let status = Arc::new(JoinStatus::default());
    let (tx, rx) = watch::channel(vec![b.addr().to_string()]);
    tokio::spawn(join::run(
        a.clone(),
        rx,
        join::SystemResolver,
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(300),
            jitter: 0.2,
        },
        status.clone(),
    ));
    wait_until("a and b to join", Duration::from_secs(10), async || {
        status.joined() && alive_others(&b).await == 1
    })
    .await;

    // b leaves for good; a is alone and starts trying again.
    b.leave(Duration::from_secs(1));
    wait_until("a to be alone", Duration::from_secs(10), async || {
        alive_others(&a).await == 0
    })
    .await;
    b.shutdown();
    wait_until("a to try again", Duration::from_secs(10), async || {
        !status.joined() && status.failures() >= 1
    })
    .await;

    // A new list (as a snapshot brings) is used at once.
    let c = node("c", free_port()).await;
    tx.send(vec![c.addr().to_string()]).unwrap();
    wait_until("a to join c", Duration::from_secs(10), async || {
        alive_others(&a).await == 1 && status.joined()
    })
    .await;
    a.shutdown();
    c.shutdown();
}
