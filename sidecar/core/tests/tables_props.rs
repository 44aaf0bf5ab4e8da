//! Property test of the replicated tables through the public simulator:
//! random writes and deletes on whole nodes (membership and tables) in two
//! networks (every node in one, even nodes in the other too), with
//! partitions that heal on their own, crashes, and new nodes started in
//! their place, in virtual time. After quiescence the one oracle of
//! `gossamer_core::sim::model` holds: membership agrees, all live members
//! of a network hold identical tables, no acknowledged write is lost, no
//! delete is resurrected, nothing of a crashed node shows, and every
//! node's watcher was told the story its tables end at.

#![allow(clippy::disallowed_methods)] // the virtual-time origin

use std::time::{Duration, Instant};

use gossamer_core::sim::model::{Run, Step, Workload};
use proptest::prelude::*;

/// Nodes at the start.
const NODES: usize = 5;
/// Nodes started in place of crashed ones.
const STANDBY: usize = 4;
const KEYS: usize = 6;

#[derive(Debug, Clone)]
enum Action {
    Write {
        node: usize,
        net: usize,
        key: usize,
    },
    Delete {
        node: usize,
        net: usize,
        key: usize,
    },
    /// Splits the nodes by the bits of `mask` for `secs` seconds.
    Partition {
        mask: u8,
        secs: u64,
    },
    Crash {
        node: usize,
    },
    /// A new node starts (a restarted pod is a new node).
    Start,
}

fn action() -> impl Strategy<Value = Action> {
    let nodes = NODES + STANDBY;
    prop_oneof![
        8 => (0..nodes, 0..2usize, 0..KEYS).prop_map(|(node, net, key)| Action::Write { node, net, key }),
        4 => (0..nodes, 0..2usize, 0..KEYS).prop_map(|(node, net, key)| Action::Delete { node, net, key }),
        1 => (1u8..255, 2u64..15).prop_map(|(mask, secs)| Action::Partition { mask, secs }),
        1 => (0..nodes).prop_map(|node| Action::Crash { node }),
        1 => Just(Action::Start),
    ]
}

/// Runs the actions, then checks; `Ok`: the acknowledged calls.
fn scenario(seed: u64, actions: &[(u64, Action)]) -> Result<usize, String> {
    let w = Workload {
        nodes: NODES,
        standby: STANDBY,
        networks: 2,
        seed,
        converged: false,
        loss: 0.05,
        // Bulk syncs every 5 s (2 s to answer) repair what lost gossip
        // missed sooner than the 30 s default.
        configure: |c| {
            c.tables.bulk_sync_interval = Duration::from_secs(5);
            c.tables.bulk_sync_timeout = Duration::from_secs(2);
        },
    };
    let mut r = Run::new(&w, Instant::now()).map_err(|e| e.to_string())?;
    let mut heal_at: Option<Duration> = None;
    for (gap_ms, a) in actions {
        let until = r.sim.now() + Duration::from_millis(*gap_ms);
        if let Some(at) = heal_at.filter(|at| *at <= until) {
            r.sim.run_until(at);
            r.step(&Step::Heal, Duration::ZERO)
                .map_err(|e| e.to_string())?;
            heal_at = None;
        }
        r.sim.run_until(until);
        let step = match *a {
            Action::Write { node, net, key } => Step::Write { node, net, key },
            Action::Delete { node, net, key } => Step::Delete { node, net, key },
            Action::Partition { mask, secs } => {
                heal_at = Some(r.sim.now() + Duration::from_secs(secs));
                Step::Split(mask)
            }
            Action::Crash { node } => Step::Crash(node),
            Action::Start => Step::Start,
        };
        r.step(&step, Duration::ZERO).map_err(|e| e.to_string())?;
    }
    // Quiescence: heal, no more writes, long enough for suspicions to end,
    // reconnects and bulk syncs to repair what gossip missed; the last 20 s
    // without loss, so that no suspicion a lost packet started is open.
    r.quiesce(Duration::from_secs(60), Duration::from_secs(20));
    r.check()?;
    Ok(r.ops.len())
}

proptest! {
    // 32 cases by default; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    #[test]
    fn tables_converge_without_losing_writes_or_resurrecting_deletes(
        seed in any::<u64>(),
        actions in proptest::collection::vec((0u64..1500, action()), 20..80),
    ) {
        if let Err(e) = scenario(seed, &actions) {
            return Err(TestCaseError::fail(e));
        }
    }
}

#[test]
fn tables_converge_in_a_quiet_cluster() {
    let actions: Vec<(u64, Action)> = (0..40)
        .map(|i| {
            let (node, net, key) = (i % NODES, i % 2, i % KEYS);
            let a = if i % 5 == 4 {
                Action::Delete { node, net, key }
            } else {
                Action::Write { node, net, key }
            };
            (100, a)
        })
        .collect();
    let acknowledged = scenario(7, &actions).unwrap();
    // Writes to a network the node is in, and deletes of keys it sees:
    // 30 of the 40 calls (the same every run).
    assert_eq!(acknowledged, 30, "calls acknowledged");
}
