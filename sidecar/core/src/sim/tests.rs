//! The simulator's own tests: determinism, the snapshot start, and the
//! convergence property after faults heal.

// The clock is read once per test, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn lossy(nodes: usize, seed: u64) -> SimConfig {
    let mut c = SimConfig::lan(nodes, seed);
    c.link.loss = 0.05;
    c
}

/// Every live node sees every live node alive and every crashed node gone.
fn agreement(sim: &Sim) -> Result<(), String> {
    model::membership_agrees(sim)
}

fn fail_trace(seed: u64) -> (u64, Traffic) {
    let mut sim = Sim::new(lossy(20, seed), Instant::now()).unwrap();
    sim.run_until(secs(3));
    sim.crash(7);
    sim.run_until(secs(6));
    sim.partition(|i| u32::from(i < 5));
    sim.run_until(secs(8));
    sim.heal();
    sim.run_until(secs(25));
    (sim.trace_hash(), sim.traffic())
}

#[test]
fn same_seed_same_trace_hash_other_seed_other_hash() {
    let a = fail_trace(7);
    let b = fail_trace(7);
    assert_eq!(a, b, "two runs with seed 7 differ");
    let c = fail_trace(8);
    assert_ne!(a.0, c.0, "seeds 7 and 8 gave the same trace");
}

/// The scenarios' trace hashes (50 nodes, seed 7, 2 % loss, 40 s) as the
/// code before catch-up push/pulls, the transmit floor and eager pushes
/// computed them: `memberlist_exact` reproduces memberlist's runs event
/// for event. With Gossamer's defaults, runs where members join, die or
/// leave send more (catch-ups, gossip to the dead that does not use up
/// transmits), so their traces differ; a metadata change in a converged
/// cluster of 50 (transmit limit 8, over the floor) and a key rotation
/// change no member's status, and trace the same.
#[test]
fn memberlist_exact_keeps_the_old_trace_hashes() {
    let cases = [
        (Scenario::Propagate, false, 0xbb27_3633_b03d_a001u64, false),
        (Scenario::Propagate, true, 0xa1f3_421f_26b1_680b, true),
        (Scenario::Fail, false, 0x6c6f_9466_e347_0471, true),
        (Scenario::Partition, false, 0xe769_82f6_d5f6_d66d, true),
        (Scenario::Rotate, false, 0x0fa8_42f2_f665_7773, false),
    ];
    for (scenario, join, old, changes) in cases {
        let mut s = SimConfig::lan(50, 7);
        s.converged = !join;
        s.link.loss = 0.02;
        let mut cfg = ScenarioConfig::new(s, scenario, secs(40));
        cfg.memberlist_exact = true;
        let exact = run_scenario(&cfg, Instant::now()).unwrap().trace_hash;
        assert_eq!(exact, old, "{} join={join}", scenario.as_str());
        cfg.memberlist_exact = false;
        let ours = run_scenario(&cfg, Instant::now()).unwrap().trace_hash;
        assert_eq!(ours != old, changes, "{} join={join}", scenario.as_str());
    }
}

#[test]
fn a_converged_start_stays_quiet_and_shares_its_table() {
    let mut sim = Sim::new(SimConfig::lan(200, 1), Instant::now()).unwrap();
    sim.run_until(secs(10));
    let leaves = sim
        .take_events()
        .into_iter()
        .filter(|(_, _, e)| matches!(e, Event::Leave(_)))
        .count();
    assert_eq!(leaves, 0);
    agreement(&sim).unwrap();
    // Nobody changed: nothing copied out of the shared snapshot.
    assert_eq!(sim.owned_entries(), 0);
    // Every node probed round robin over a permutation of the snapshot,
    // and nobody was suspected: the counters, not the view.
    for i in 0..200 {
        let st = sim.node(i).stats();
        assert_eq!(
            (st.failed_probes, st.suspicions, st.refutations),
            (0, 0, 0),
            "n{i}: failed probes, suspicions, refutations"
        );
    }
}

#[test]
fn nodes_joining_one_by_one_converge() {
    let mut c = SimConfig::lan(12, 3);
    c.converged = false;
    let mut sim = Sim::new(c, Instant::now()).unwrap();
    sim.run_until(secs(10));
    agreement(&sim).unwrap();
}

#[test]
fn a_crash_is_detected_and_a_restart_rejoins() {
    let mut sim = Sim::new(SimConfig::lan(30, 5), Instant::now()).unwrap();
    sim.run_until(secs(2));
    sim.crash(9);
    sim.run_until(secs(30));
    agreement(&sim).unwrap();
    assert_eq!(
        sim.node(0).member("n9").map(|m| m.status),
        Some(NodeStatus::Dead)
    );
    sim.restart(9, &[0]).unwrap();
    sim.run_until(secs(45));
    agreement(&sim).unwrap();
    assert!(sim.node(0).member("n9").unwrap().incarnation > 1);
}

#[test]
fn metadata_reaches_everyone_within_the_bound_times_two() {
    let c = scenario::ScenarioConfig::new(
        SimConfig::lan(300, 11),
        Scenario::Propagate,
        Duration::from_secs(6),
    );
    let r = run_scenario(&c, Instant::now()).unwrap();
    let all = r.quantile(1.0).expect("everyone learned");
    assert!(all <= r.bound() * 2, "{all:?} vs bound {:?}", r.bound());
    assert_eq!(r.false_positive_incidents, 0);
}

#[test]
fn rotation_in_order_loses_nothing() {
    let c = scenario::ScenarioConfig::new(
        SimConfig::lan(40, 2),
        Scenario::Rotate,
        Duration::from_secs(12),
    );
    let r = run_scenario(&c, Instant::now()).unwrap();
    assert_eq!(r.decrypt_failures, 0);
    assert!(r.quantile(1.0).is_some(), "every node switched");
}

#[test]
fn the_epidemic_bound_matches_the_issue() {
    assert_eq!(scenario::epidemic_rounds(3, 1000), 5);
    assert_eq!(scenario::epidemic_rounds(3, 10_000), 7);
    assert_eq!(scenario::epidemic_rounds(3, 64), 3);
    assert!((scenario::serf_model(30, 3, 0.0, 0.0) - 1.0 / 32.0).abs() < 1e-12);
}

/// One fault, applied for a while.
#[derive(Debug, Clone)]
enum Fault {
    Crash(usize),
    Cut(usize, usize),
    Isolate(usize),
    Halves(usize),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (1usize..8).prop_map(Fault::Crash),
        (0usize..8, 0usize..8).prop_map(|(a, b)| Fault::Cut(a, b)),
        (1usize..8).prop_map(Fault::Isolate),
        (1usize..7).prop_map(Fault::Halves),
    ]
}

proptest! {
    // PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig { cases: proptest_cases(24), ..ProptestConfig::default() })]

    /// After any crashes, cuts, isolations and partitions, a heal, restarts
    /// of some crashed nodes and quiescence, every live node agrees on
    /// membership: every live node alive, every crashed one gone. (With
    /// reconnects, as the layers above memberlist run them.)
    #[test]
    fn live_nodes_agree_after_faults_heal(
        n in 3usize..8,
        converged in any::<bool>(),
        seed in 0u64..1000,
        loss in prop_oneof![Just(0.0), Just(0.05)],
        faults in proptest::collection::vec((fault(), 1u64..15), 1..5),
        restart_mask in any::<u8>(),
    ) {
        let mut c = SimConfig::lan(n, seed);
        c.converged = converged;
        c.link.loss = loss;
        c.reconnect = Some(Duration::from_secs(10));
        let mut sim = Sim::new(c, Instant::now()).unwrap();
        sim.run_for(secs(5));
        let mut crashed = BTreeSet::new();
        for (f, hold) in faults {
            match f {
                Fault::Crash(i) if i < n && !crashed.contains(&i) => {
                    sim.crash(i);
                    crashed.insert(i);
                }
                Fault::Cut(a, b) if a < n && b < n && a != b => sim.cut(a, b),
                Fault::Isolate(i) if i < n => sim.isolate(i),
                Fault::Halves(k) if k < n => sim.partition(|i| u32::from(i < k)),
                _ => {}
            }
            sim.run_for(secs(hold));
        }
        sim.heal();
        for (bit, i) in crashed.iter().enumerate() {
            if restart_mask & (1 << bit) != 0 {
                sim.restart(*i, &[0]).unwrap();
            }
        }
        // Quiescence: suspicion timeouts, refutations, reconnects, push/pull;
        // the last 20 s without loss, so that no suspicion a lost packet
        // started is still open when we look.
        sim.run_for(secs(70));
        sim.set_link(LinkModel::default());
        sim.run_for(secs(20));
        prop_assert!(agreement(&sim).is_ok(), "{}", agreement(&sim).unwrap_err());
    }
}

#[test]
fn a_healed_partition_echoes_dead_messages_but_no_probe_fails_without_loss() {
    let c = scenario::ScenarioConfig::new(
        SimConfig::lan(40, 7),
        Scenario::Partition,
        Duration::from_secs(60),
    );
    let r = run_scenario(&c, Instant::now()).unwrap();
    // Each side declared the other dead during the cut ...
    assert!(r.cross_partition_declarations > 0);
    // ... and after the heal, those dead messages reach the subjects' own
    // side, which accepts them until the subject refutes (memberlist's
    // deadNode does the same): not false positives of the probes.
    assert!(r.partition_echo_declarations > 0, "{r}");
    assert_eq!(r.false_positive_declarations, 0, "{r}");
    assert!(r.quantile(1.0).is_some(), "the halves merged again: {r}");
}

#[test]
fn bad_simulations_are_refused_with_typed_errors() {
    let mut c = SimConfig::lan(3, 1);
    c.standby = 4;
    let err = Sim::new(c, Instant::now())
        .err()
        .expect("more standby nodes than nodes");
    assert_eq!(
        err,
        SimError::TooManyStandby {
            standby: 4,
            nodes: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "4 standby nodes of 3: there cannot be more than the nodes"
    );
    let one = ScenarioConfig::new(
        SimConfig::lan(1, 1),
        Scenario::Propagate,
        Duration::from_secs(1),
    );
    assert_eq!(
        run_scenario(&one, Instant::now()).err(),
        Some(SimError::TooFewNodes(1))
    );
    assert_eq!(
        "gossip".parse::<Scenario>().err(),
        Some(SimError::UnknownScenario("gossip".into()))
    );
}
