//! Two operator replicas on a real control plane: one leads (holds the
//! Lease and writes), the other waits. SIGKILL the leader and the other
//! takes over within the Lease's duration; SIGTERM it and the Lease is
//! released at once. Snapshot versions keep growing through all of it and
//! never repeat, and a restarted operator makes no new version for content
//! that did not change.

// These tests drive real processes: their deadlines are wall-clock.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gossamer_tests::kube::ControlPlane;
use gossamer_tests::operator::{Operator, OperatorOptions};

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane starts (tests/kube/install.sh builds it)")
}

fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn leader_of<'a>(ops: &[&'a Operator]) -> Option<&'a Operator> {
    let leaders: Vec<_> = ops.iter().filter(|o| o.is_leader()).collect();
    assert!(
        leaders.len() <= 1,
        "two replicas lead at once: {:?}",
        leaders.iter().map(|o| o.identity()).collect::<Vec<_>>()
    );
    leaders.first().map(|o| **o)
}

/// (version, hash) of the snapshot ConfigMap, if there is one.
fn stamp(ns: &str) -> Option<(u64, String)> {
    let out = cp()
        .kubectl(&[
            "get",
            "configmap",
            "gossamer-snapshot-default",
            "-n",
            ns,
            "-o",
            "jsonpath={.data.version} {.data.hash} {.data.snapshot\\.json}",
        ])
        .ok()?;
    if !out.success() {
        return None;
    }
    let mut it = out.stdout.splitn(3, ' ');
    let v = it.next()?.parse().ok()?;
    let h = it.next()?.to_string();
    Some((v, h + it.next().unwrap_or_default()))
}

fn apply_network(ns: &str, tables: &[&str]) {
    let tables: Vec<String> = tables.iter().map(|t| format!("{{name: {t}}}")).collect();
    let yaml = format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: net, namespace: {ns}}}\nspec:\n  tables: [{}]\n",
        tables.join(", ")
    );
    let out = cp().kubectl_apply_stdin(&yaml).expect("kubectl runs");
    assert!(out.success(), "{out:?}");
}

fn wait_snapshot_with(ns: &str, table: &str) -> u64 {
    wait(
        &format!("a snapshot with table {table}"),
        Duration::from_secs(30),
        || {
            stamp(ns)
                .filter(|(_, h)| h.contains(&format!("\"{table}\"")))
                .map(|(v, _)| v)
        },
    )
}

#[test]
fn the_standby_takes_over_and_versions_only_grow() {
    let a = Operator::start(cp(), OperatorOptions::new("replica-a")).expect("replica a starts");
    let b = Operator::start(cp(), OperatorOptions::new("replica-b")).expect("replica b starts");
    let first = wait("a leader", Duration::from_secs(30), || leader_of(&[&a, &b]));
    let standby = if first.identity() == a.identity() {
        &b
    } else {
        &a
    };
    let ns = cp().namespace("failover").expect("a namespace");

    // Watch the stored versions for the whole test: each version is stored
    // once, with one content, and they never go back.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let poller = {
        let (stop, seen, ns) = (stop.clone(), seen.clone(), ns.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                // One more look after the stop, so the version stored just
                // before it is seen too.
                let stopping = stop.load(Ordering::Relaxed);
                if let Some(s) = stamp(&ns) {
                    let mut seen = seen.lock().unwrap();
                    if seen.last() != Some(&s) {
                        seen.push(s);
                    }
                }
                if stopping || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    apply_network(&ns, &["t0"]);
    let v1 = wait_snapshot_with(&ns, "t0");

    // SIGKILL the leader: it cannot release the Lease; the standby takes it
    // once it expires (6 s here).
    first.kill();
    let killed = Instant::now();
    wait("the standby to lead", Duration::from_secs(20), || {
        standby.is_leader().then_some(())
    });
    let takeover = killed.elapsed();
    println!(
        "figure: takeover after SIGKILL of the leader: {:.2} s (Lease 6 s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover < Duration::from_secs(6 + 3),
        "takeover took {takeover:?}, over the Lease's 6 s duration"
    );

    // The new leader writes: a change gets the next version and status.
    apply_network(&ns, &["t0", "t1"]);
    let v2 = wait_snapshot_with(&ns, "t1");
    assert!(v2 > v1, "versions grow across failover: {v1} then {v2}");
    wait(
        "status from the new leader",
        Duration::from_secs(30),
        || {
            let out = cp()
                .kubectl(&[
                    "get",
                    "gossipnetwork",
                    "net",
                    "-n",
                    &ns,
                    "-o",
                    "jsonpath={.status.observedGeneration}",
                ])
                .ok()?;
            (out.stdout.trim() == "2").then_some(())
        },
    );

    // A replica restarted beside it, then SIGTERM the leader: it stops its
    // writers and releases the Lease (no holder left behind); the standby
    // picks the Lease up at its next look, within the Lease's duration.
    let c = Operator::start(
        cp(),
        OperatorOptions {
            json_logs: true,
            ..OperatorOptions::new("replica-c")
        },
    )
    .expect("replica c starts");
    let before = stamp(&ns).expect("a stored snapshot");
    let t = Instant::now();
    standby
        .terminate(Duration::from_secs(15))
        .expect("a clean exit on SIGTERM");
    assert!(
        standby.log().contains("released the leader Lease"),
        "{}",
        standby.log()
    );
    if !c.is_leader() {
        let holder = cp()
            .kubectl(&[
                "get",
                "lease",
                "gossamer-operator",
                "-n",
                "gossamer-system",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ])
            .expect("kubectl runs");
        assert_eq!(
            holder.stdout.trim(),
            "",
            "the Lease still names the stopped leader"
        );
    }
    wait(
        "the restarted replica to lead",
        Duration::from_secs(10),
        || c.is_leader().then_some(()),
    );
    let handover = t.elapsed();
    println!(
        "figure: handover after SIGTERM of the leader: {:.2} s (Lease 6 s)",
        handover.as_secs_f64()
    );
    assert!(
        handover < Duration::from_secs(6 + 3),
        "handover took {handover:?}, over the Lease's 6 s duration"
    );

    // Nothing changed: the restarted leader rebuilds every cluster and
    // stores no new version.
    wait(
        "the new leader to rebuild and reconcile",
        Duration::from_secs(30),
        || {
            let rebuilt = c.metric("gossamer_operator_snapshot_queue_depth") == Some(0.0);
            let reconciled = c
                .metric("gossamer_operator_reconciles_total{kind=\"GossipNetwork\"}")
                .is_some_and(|n| n >= 1.0);
            (rebuilt && reconciled).then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        stamp(&ns),
        Some(before.clone()),
        "unchanged content got a new version after a restart"
    );
    assert_eq!(
        c.metric("gossamer_operator_snapshots_written_total"),
        Some(0.0)
    );

    // Asked for JSON logs, every line it wrote is a JSON object.
    let log = c.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        lines.iter().any(|l| l.contains("became the leader")),
        "{log}"
    );
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{l}");
    }

    // And the next change is exactly the next version.
    apply_network(&ns, &["t0", "t1", "t2"]);
    let v3 = wait_snapshot_with(&ns, "t2");
    assert_eq!(v3, before.0 + 1);

    stop.store(true, Ordering::Relaxed);
    poller.join().expect("the poller ends");
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 3, "saw {seen:?}");
    for pair in seen.windows(2) {
        assert!(
            pair[1].0 > pair[0].0,
            "a version went back or repeated with other content: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}
