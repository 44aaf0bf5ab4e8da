//! The shell in one process: nodes on a [`MemNetwork`] under paused tokio
//! time, so timeouts of seconds take no wall time and every run is the
//! same.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;
use crate::keyring::{encrypt_payload, EncryptionVersion, Key, NonceRng};
use crate::membership::NodeStatus;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config(name: &str) -> Config {
    Config::lan(name, any_port())
}

async fn node(net: &MemNetwork, cfg: Config) -> (NodeHandle, UnboundedReceiver<Event>) {
    start_on(net, cfg, any_port(), 7).await.unwrap()
}

/// Waits (in virtual time) until `node` sees `name` in `status`.
async fn until_status(node: &NodeHandle, name: &str, status: NodeStatus) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let members = node.members().await;
        if members.iter().any(|m| m.name == name && m.status == status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never saw {name} {status:?}: {members:?}",
            node.name()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the first event that `f` picks.
async fn next_event<T>(
    events: &mut UnboundedReceiver<Event>,
    mut f: impl FnMut(Event) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let e = events.recv().await.expect("the node stopped");
            if let Some(t) = f(e) {
                return t;
            }
        }
    })
    .await
    .expect("no such event")
}

/// Lets every task run until all wait on something (paused time moves
/// only then).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A graceful leave reaches the peers as `Left` (a crash would be `Dead`),
/// and shutdown ends the node's task: the handle reports it stopped, its
/// calls answer `None`, and its address is free again.
#[tokio::test(start_paused = true)]
async fn leave_is_seen_by_peers_and_shutdown_ends_the_node() {
    let net = MemNetwork::new();
    let (a, _ae) = node(&net, config("a")).await;
    let (b, mut be) = node(&net, config("b")).await;
    let (c, mut ce) = node(&net, config("c")).await;
    b.join(vec![a.addr()]);
    c.join(vec![a.addr()]);
    for e in [&mut be, &mut ce] {
        let contacted = next_event(e, |e| match e {
            Event::JoinFinished { contacted, .. } => Some(contacted),
            _ => None,
        })
        .await;
        assert_eq!(contacted, 1);
    }
    until_status(&a, "c", NodeStatus::Alive).await;
    until_status(&b, "c", NodeStatus::Alive).await;

    c.leave(Duration::from_secs(5));
    let sent = next_event(&mut ce, |e| match e {
        Event::LeaveFinished { broadcast_sent } => Some(broadcast_sent),
        _ => None,
    })
    .await;
    assert!(sent, "the leave was broadcast before the timeout");
    until_status(&a, "c", NodeStatus::Left).await;
    until_status(&b, "c", NodeStatus::Left).await;

    c.shutdown();
    tokio::time::timeout(Duration::from_secs(1), c.stopped())
        .await
        .expect("the node task ends on shutdown");
    assert!(
        c.call(|_, _| ()).await.is_none(),
        "a stopped node runs no calls"
    );
    settle().await;
    assert!(
        !net.is_bound(c.addr()),
        "a stopped node releases its address"
    );
    // Long after, the peers still hold it as left, not failed.
    tokio::time::sleep(Duration::from_secs(20)).await;
    until_status(&a, "c", NodeStatus::Left).await;

    // Shutdown without leaving: a crash, as peers see it.
    b.shutdown();
    b.stopped().await;
    until_status(&a, "b", NodeStatus::Dead).await;
    assert!(a.call(|_, _| ()).await.is_some(), "the other nodes run on");
}

/// Dropping every handle stops the node too.
#[tokio::test(start_paused = true)]
async fn dropping_the_handles_stops_the_node() {
    let net = MemNetwork::new();
    let (a, events) = node(&net, config("a")).await;
    let addr = a.addr();
    drop(a);
    drop(events);
    settle().await;
    assert!(!net.is_bound(addr));
}

/// Past [`MAX_INBOUND_STREAMS`] open inbound streams, one more is closed
/// unread and counted; once streams end, new ones are served again.
#[tokio::test(start_paused = true)]
async fn inbound_streams_over_the_limit_are_refused_and_counted() {
    let net = MemNetwork::new();
    let (a, _events) = node(&net, config("a")).await;
    let peer = net.bind(any_port()).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..MAX_INBOUND_STREAMS {
        held.push(peer.connect(a.addr()).await.unwrap());
    }
    settle().await;
    assert_eq!(a.traffic().streams_refused, 0);

    let mut extra = peer.connect(a.addr()).await.unwrap();
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_millis(100), extra.read(&mut byte))
        .await
        .expect("the stream over the limit is closed at once")
        .unwrap();
    assert_eq!(n, 0, "closed unread");
    assert_eq!(a.traffic().streams_refused, 1);
    // The ones within the limit are still being served (waiting for a
    // message), not closed.
    let open = tokio::time::timeout(Duration::from_millis(100), held[0].read(&mut byte)).await;
    assert!(open.is_err(), "a stream within the limit stays open");
    let metrics = crate::metrics::Metrics::new(a.clone(), Default::default(), None)
        .render()
        .await
        .unwrap();
    assert!(
        metrics.contains("gossamer_streams_refused_total 1"),
        "{metrics}"
    );

    // Streams that end free their slots.
    drop(held);
    settle().await;
    let mut again = peer.connect(a.addr()).await.unwrap();
    let open = tokio::time::timeout(Duration::from_millis(100), again.read(&mut byte)).await;
    assert!(open.is_err(), "served again once slots are free");
    assert_eq!(a.traffic().streams_refused, 1);
}

fn key(byte: u8) -> Key {
    Key::new(&[byte; 32]).unwrap()
}

/// A node with key A counts what was sealed with key B as a decrypt
/// failure (in its stats and its metrics) and changes nothing else: a
/// datagram, and a join (a stream) from a node on key B.
#[tokio::test(start_paused = true)]
async fn traffic_sealed_with_another_key_is_counted_and_changes_nothing() {
    let net = MemNetwork::new();
    let mut cfg = config("a");
    cfg.keys = vec![key(1)];
    cfg.gossip_verify_incoming = true;
    let version = EncryptionVersion::for_protocol(cfg.protocol_version);
    let (a, _events) = node(&net, cfg).await;
    let members = a.members().await;
    let keys = a.keys().await;
    assert_eq!(a.stats().await.decrypt_failures, 0);

    let peer = net.bind(any_port()).await.unwrap();
    let mut nonces = <NonceRng as rand::SeedableRng>::seed_from_u64(3);
    let seal = |k: &Key, nonces: &mut NonceRng| {
        let mut out = Vec::new();
        encrypt_payload(version, k, b"not a real message", b"", nonces, &mut out);
        out
    };
    peer.send_to(&seal(&key(2), &mut nonces), a.addr()).unwrap();
    settle().await;
    let stats = a.stats().await;
    assert_eq!(stats.decrypt_failures, 1);
    assert_eq!(stats.packets_received, 1);
    // The same bytes sealed with key A pass decryption (and only then
    // fail to parse): the key made the difference.
    peer.send_to(&seal(&key(1), &mut nonces), a.addr()).unwrap();
    settle().await;
    let stats = a.stats().await;
    assert_eq!(stats.decrypt_failures, 1);
    assert_eq!(stats.packets_received, 2);
    assert_eq!(stats.malformed, 1);

    // A whole node on key B tries to join: its push/pull stream fails.
    let mut cfg = config("b");
    cfg.keys = vec![key(2)];
    let (b, mut be) = node(&net, cfg).await;
    b.join(vec![a.addr()]);
    let (contacted, errors) = next_event(&mut be, |e| match e {
        Event::JoinFinished {
            contacted, errors, ..
        } => Some((contacted, errors)),
        _ => None,
    })
    .await;
    assert_eq!(contacted, 0, "{errors:?}");
    let snapshot = crate::metrics::snapshot(&a).await.unwrap();
    assert_eq!(snapshot.decrypt_failures, 2);
    assert_eq!(a.stats().await.decrypt_failures, 2);
    assert_eq!(a.members().await, members);
    assert_eq!(a.keys().await, keys);
}

/// A seed that never answers (cut off by the network) fails the join at
/// the core's stream deadline, measured on the shell's (paused) clock.
#[tokio::test(start_paused = true)]
async fn a_join_to_an_unreachable_seed_fails_at_the_stream_deadline() {
    let net = MemNetwork::new();
    let (a, _ae) = node(&net, config("a")).await;
    let cfg = config("b");
    let deadline = cfg.tcp_timeout;
    let (b, mut be) = node(&net, cfg).await;
    net.isolate(a.addr());
    let started = Instant::now();
    b.join(vec![a.addr()]);
    let (contacted, errors) = next_event(&mut be, |e| match e {
        Event::JoinFinished {
            contacted, errors, ..
        } => Some((contacted, errors)),
        _ => None,
    })
    .await;
    assert_eq!(contacted, 0);
    assert!(errors.iter().any(|e| e.contains("timed out")), "{errors:?}");
    assert_eq!(
        started.elapsed(),
        deadline,
        "failed exactly at the deadline"
    );
    // Healed, the same join goes through.
    net.heal(a.addr());
    b.join(vec![a.addr()]);
    let contacted = next_event(&mut be, |e| match e {
        Event::JoinFinished { contacted, .. } => Some(contacted),
        _ => None,
    })
    .await;
    assert_eq!(contacted, 1);
    until_status(&a, "b", NodeStatus::Alive).await;
}

/// A protocol loop that wakes far later than it asked (here: the clock
/// jumps 2 s past its next timer, as when the process was starved of CPU)
/// counts a late wake; a loop that wakes on time counts none.
#[tokio::test(start_paused = true)]
async fn a_late_wake_of_the_protocol_loop_is_counted() {
    let net = MemNetwork::new();
    let (a, _events) = node(&net, config("a")).await;
    // Many timers fire on time in virtual time: none is late.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(a.traffic().late_wakes, 0);
    // Jump past the next deadline without running the loop in between.
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    let late = a.traffic().late_wakes;
    assert!(late >= 1, "late wakes: {late}");
    let text = crate::metrics::Metrics::new(a.clone(), Default::default(), None)
        .render()
        .await
        .unwrap();
    assert!(
        text.contains(&format!("gossamer_late_wakes_total {late}")),
        "{text}"
    );
}
