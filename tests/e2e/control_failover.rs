//! The control stream follows the Lease: two operator replicas on a real
//! control plane, a sidecar's stream on the leader. When the leader stops,
//! its stream ends; the sidecar reconnects to the new leader and gets the
//! cluster's current version at once, and every version after.
//!
//! A test binary of its own: its replicas compete for the Lease, which
//! would disturb any other operator test running beside it.

// These tests drive real processes: their deadlines are wall-clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use gossamer_proto::control::v1::ConfigSnapshot;
use gossamer_tests::control::{self, Sidecar};
use gossamer_tests::kube::ControlPlane;
use gossamer_tests::operator::{Operator, OperatorOptions, CONTROL_SERVICE_DNS};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane starts (tests/kube/install.sh builds it)")
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn apply(yaml: &str) {
    let out = cp().kubectl_apply_stdin(yaml).expect("kubectl runs");
    assert!(out.success(), "kubectl apply failed:\n{yaml}\n{out:?}");
}

fn network(ns: &str, tables: &str) -> String {
    format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: net, namespace: {ns}}}\nspec:\n  tables: [{tables}]\n"
    )
}

async fn open(op: &Operator, token: &str, ns: &str) -> Result<Sidecar, tonic::Status> {
    let ca = wait("the CA bundle", || control::ca_bundle(cp()).ok());
    let channel = control::connect(op.control_port(), &ca, CONTROL_SERVICE_DNS)
        .await
        .expect("TLS verified against the published bundle");
    Sidecar::subscribe(channel, Some(token), control::hello(ns, "web-0")).await
}

async fn next_where(
    sc: &mut Sidecar,
    what: &str,
    ok: impl Fn(&ConfigSnapshot) -> bool,
) -> ConfigSnapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sc.next(left).await {
            Ok(Some(s)) if ok(&s) => return s,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended before a snapshot with {what}"),
            Err(e) => panic!("no snapshot with {what} within {WAIT:?}: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_its_leader_and_the_next_leader_serves_the_current_version() {
    let a = Operator::start(cp(), OperatorOptions::new("ctl-a")).expect("replica a starts");
    let b = Operator::start(cp(), OperatorOptions::new("ctl-b")).expect("replica b starts");
    let (leader, standby) = wait("a leader", || match (a.is_leader(), b.is_leader()) {
        (true, false) => Some((&a, &b)),
        (false, true) => Some((&b, &a)),
        _ => None,
    });
    let ns = cp().namespace("ctlfail").expect("a namespace");
    apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n  namespace: {ns}\n  labels: {{gossamer.dev/cluster: default}}\nspec:\n  containers:\n  - name: app\n    image: gossamer.dev/none:0\n"
    ));
    apply(&network(&ns, "{name: t0}"));
    let token = control::pod_token(cp(), &ns, "web-0", "gossamer").expect("a Pod token");

    // The standby serves no stream; the leader does.
    let refused = open(standby, &token, &ns).await.err().expect("refused");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let mut sc = wait("a stream on the leader", || {
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| rt.block_on(open(leader, &token, &ns))).ok()
    });
    let s1 = next_where(&mut sc, "t0", |s| s.networks.len() == 1).await;

    // The leader stops (and releases the Lease): its stream ends.
    leader
        .terminate(Duration::from_secs(15))
        .expect("the leader stops cleanly");
    match sc.next(WAIT).await {
        Ok(None) => {}
        Err(s) if s.code() != Code::DeadlineExceeded => {}
        other => panic!("the stream outlived its leader: {other:?}"),
    }

    // The sidecar reconnects to the new leader: the same version at once
    // (nothing changed), then the next one.
    wait("the standby to lead", || standby.is_leader().then_some(()));
    let mut sc = wait("a stream on the new leader", || {
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| rt.block_on(open(standby, &token, &ns))).ok()
    });
    let again = next_where(&mut sc, "t0", |s| s.networks.len() == 1).await;
    assert_eq!(
        again.version, s1.version,
        "no new version for the same content"
    );
    assert_ne!(again.nonce, s1.nonce);
    apply(&network(&ns, "{name: t0}, {name: t1}"));
    let s2 = next_where(&mut sc, "t1", |s| {
        s.networks.first().is_some_and(|n| n.tables.len() == 2)
    })
    .await;
    assert!(s2.version > s1.version);
}
