//! The join loop and the core's sentinel together, on a [`MemNetwork`]
//! under paused time: a node cut off past the sentinel's TTL is reported
//! partitioned although it is not alone in its own view for a while, and
//! once the cut heals it re-bootstraps with no call from outside, even
//! though its only bootstrap peer is gone by then (the core rejoins through
//! the members it knew).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::membership::Config;
use crate::node::SentinelConfig;
use crate::runtime::{start_on, MemNetwork};

/// Resolves `ip:port` text only.
struct Literal;

impl Resolve for Literal {
    async fn resolve(&self, peer: &str) -> std::io::Result<Vec<SocketAddr>> {
        peer.parse()
            .map(|a| vec![a])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !f().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_cut_off_node_is_partitioned_and_rejoins_after_the_heal_without_its_seed() {
    let net = MemNetwork::new();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut nodes = Vec::new();
    let mut events = Vec::new();
    for name in ["a", "b", "c"] {
        let (n, e) = start_on(&net, Config::lan(name, any), any, 7)
            .await
            .unwrap();
        let mut cfg = SentinelConfig::new("test");
        cfg.ttl = Duration::from_secs(3);
        n.call(move |n, now| n.enable_sentinel(cfg, now))
            .await
            .unwrap()
            .unwrap();
        nodes.push(n);
        events.push(e);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (a, b, c) = (nodes[0].clone(), nodes[1].clone(), nodes[2].clone());
    // c's join loop knows only a.
    let (_peers_tx, peers_rx) = tokio::sync::watch::channel(vec![a.addr().to_string()]);
    let status = Arc::new(JoinStatus::default());
    tokio::spawn(run(
        c.clone(),
        peers_rx,
        Literal,
        Backoff::default(),
        status.clone(),
    ));
    b.join(vec![a.addr()]);
    let alive = |n: &NodeHandle| {
        let n = n.clone();
        async move {
            n.members()
                .await
                .iter()
                .filter(|m| m.status == crate::membership::NodeStatus::Alive)
                .count()
        }
    };
    until("all three see three alive", async || {
        alive(&a).await == 3 && alive(&b).await == 3 && alive(&c).await == 3
    })
    .await;
    until("c sees the sentinel", async || {
        c.call(|n, now| n.infos().get("gossamer/sentinel", now).is_some())
            .await
            .unwrap()
    })
    .await;
    assert!(!status.partitioned());

    net.isolate(c.addr());
    until("c's join loop reports it partitioned", async || {
        status.partitioned()
    })
    .await;
    let st = c
        .call(|n, now| n.sentinel_status(now))
        .await
        .unwrap()
        .unwrap();
    assert!(st.partitioned_for.is_some() && !st.writer, "{st:?}");
    assert!(st.rejoins >= 1, "{st:?}");
    // The only bootstrap peer goes away for good.
    a.shutdown();
    a.stopped().await;
    net.heal(c.addr());
    until("c sees the sentinel again", async || {
        c.call(|n, now| n.partitioned_for(now).is_none())
            .await
            .unwrap()
    })
    .await;
    until("c and b see each other alive", async || {
        let cb = c
            .members()
            .await
            .iter()
            .any(|m| m.name == "b" && m.status == crate::membership::NodeStatus::Alive);
        let bc = b
            .members()
            .await
            .iter()
            .any(|m| m.name == "c" && m.status == crate::membership::NodeStatus::Alive);
        cb && bc
    })
    .await;
    until("the loop no longer reports it partitioned", async || {
        !status.partitioned()
    })
    .await;
}
