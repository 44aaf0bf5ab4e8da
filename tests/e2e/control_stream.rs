//! The operator's control stream against a real etcd + kube-apiserver +
//! kube-controller-manager: TLS with the CA the operator keeps in a Secret
//! and publishes in a ConfigMap, projected-style ServiceAccount tokens
//! bound to Pod objects (TokenRequest), TokenReview by the operator, and a
//! small tonic client standing in for a sidecar.
//!
//! Pods stay Pending (no kubelet): the operator counts members by label,
//! and tokens bind to the Pod objects all the same.

// These tests drive real processes: their deadlines are wall-clock.
#![allow(clippy::disallowed_methods)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gossamer_proto::control::v1::control_client::ControlClient;
use gossamer_proto::control::v1::sidecar_message::Kind;
use gossamer_proto::control::v1::{
    Ack, ConfigSnapshot, ErrorDetail, Hello, Nack, NetworkStatus, SidecarMessage, StatusReport,
};
use gossamer_tests::control::{self, Sidecar};
use gossamer_tests::kube::ControlPlane;
use gossamer_tests::operator::{
    Operator, OperatorOptions, CA_SECRET, CONTROL_SERVICE_DNS, OPERATOR_NAMESPACE,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const WAIT: Duration = Duration::from_secs(30);

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane starts (tests/kube/install.sh builds it)")
}

fn operator() -> &'static Operator {
    static OP: OnceLock<Operator> = OnceLock::new();
    OP.get_or_init(|| {
        // A one-minute serving certificate: renewed every 40 s while the
        // tests run.
        let mut opts = OperatorOptions::new("ctl");
        opts.control_cert_lifetime_secs = Some(60);
        let op = Operator::start(cp(), opts).expect("the operator starts");
        wait("the only replica leads", || op.is_leader().then_some(()));
        op
    })
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; operator log tail:\n{}",
            tail(&operator().log(), 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn kubectl(args: &[&str]) -> gossamer_tests::KubectlOutput {
    cp().kubectl(args).expect("kubectl runs")
}

fn apply(yaml: &str) {
    cp().apply(yaml);
}

fn jsonpath(ns: &str, kind: &str, name: &str, path: &str) -> String {
    cp().jsonpath(ns, kind, name, path)
}

fn wait_field(ns: &str, kind: &str, name: &str, path: &str, want: &str) {
    let mut last = String::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let v = jsonpath(ns, kind, name, path);
        if v == want {
            return;
        }
        last = if v.is_empty() { last } else { v };
        assert!(
            Instant::now() < deadline,
            "{kind}/{name} {path} == {want:?}: not within {WAIT:?}; last seen {last:?}\noperator log tail:\n{}",
            tail(&operator().log(), 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn setup(prefix: &str) -> String {
    operator();
    cp().namespace(prefix).expect("a fresh namespace")
}

/// Creates a Pod (labelled for `cluster` if given).
fn pod(ns: &str, name: &str, cluster: Option<&str>) {
    let cluster = cluster
        .map(|c| format!("\n    gossamer.dev/cluster: {c}"))
        .unwrap_or_default();
    apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: web{cluster}\nspec:\n  containers:\n  - name: app\n    image: gossamer.dev/none:0\n"
    ));
}

/// A TokenRequest token bound to Pod `name`, for `audience` (10 minutes,
/// the API server's minimum).
fn token(ns: &str, name: &str, audience: &str) -> String {
    control::pod_token(cp(), ns, name, audience).expect("a Pod token")
}

fn ca_bundle() -> String {
    wait("the CA bundle ConfigMap", || control::ca_bundle(cp()).ok())
}

async fn channel_to(port: u16, domain: &str) -> gossamer_tests::Result<Channel> {
    control::connect(port, &ca_bundle(), domain).await
}

async fn subscribe_to(port: u16, token: Option<&str>, hello: Hello) -> Result<Sidecar, Status> {
    let channel = channel_to(port, CONTROL_SERVICE_DNS)
        .await
        .expect("a TLS connection verified against the published CA bundle");
    Sidecar::subscribe(channel, token, hello).await
}

async fn subscribe(token: Option<&str>, hello: Hello) -> Result<Sidecar, Status> {
    subscribe_to(operator().control_port(), token, hello).await
}

/// The next snapshot that satisfies `ok`, skipping others.
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
            Err(e) => panic!(
                "no snapshot with {what} within {WAIT:?} ({e:?}); operator log tail:\n{}",
                tail(&operator().log(), 30)
            ),
        }
    }
}

async fn refused(token: Option<&str>, hello: Hello) -> Status {
    match subscribe(token, hello).await {
        Ok(_) => panic!("the stream was accepted"),
        Err(s) => s,
    }
}

fn report(s: &ConfigSnapshot, entries: u64) -> StatusReport {
    StatusReport {
        applied_version: s.version,
        member_counts: None,
        members: vec![],
        networks: s
            .networks
            .iter()
            .map(|n| NetworkStatus {
                id: n.id.clone(),
                name: n.name.clone(),
                entries,
            })
            .collect(),
        health_score: 0,
        key_fingerprints: s.keys.iter().map(|k| k.fingerprint.clone()).collect(),
        primary_fingerprint: s.primary_fingerprint.clone(),
        decrypt_failures: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_gets_snapshots_and_its_acks_nacks_and_reports_reach_the_status() {
    let ns = setup("stream");
    pod(&ns, "web-0", Some("default"));
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: endpoints, namespace: {ns}}}\nspec:\n  memberSelector: {{matchLabels: {{app: web}}}}\n  tables: [{{name: backends}}]\n"
    ));
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: k0, namespace: {ns}}}\nspec: {{}}\n"
    ));
    wait_field(&ns, "gossipnetwork", "endpoints", "{.status.members}", "1");
    wait_field(&ns, "gossipkey", "k0", "{.status.phase}", "Primary");
    let t = token(&ns, "web-0", "gossamer");
    let mut sc = subscribe(Some(&t), control::hello(&ns, "web-0"))
        .await
        .expect("a member with its own token is accepted");

    // The current version at once: the key (bytes and fingerprint, the
    // primary) and the network.
    let s1 = next_where(&mut sc, "a key and the network", |s| {
        s.keys.len() == 1 && s.networks.len() == 1
    })
    .await;
    assert!(s1.version >= 1);
    assert_eq!(s1.keys[0].bytes.len(), 32);
    let fp = jsonpath(&ns, "gossipkey", "k0", "{.status.fingerprint}");
    assert_eq!(s1.keys[0].fingerprint, fp);
    assert_eq!(s1.primary_fingerprint, fp);
    assert_eq!(s1.label, format!("{ns}/default"));
    assert_eq!(s1.networks[0].name, "endpoints");
    assert_eq!(s1.networks[0].tables, ["backends"]);
    assert_eq!(s1.networks[0].members, ["web-0"]);
    assert_eq!(s1.gossip.as_ref().map(|g| g.port), Some(7946));

    // ACK and report: the network counts it as running the current
    // snapshot, with its entries; the key counts it as a holder.
    sc.send(Kind::Ack(Ack {
        version: s1.version,
        nonce: s1.nonce.clone(),
    }))
    .await;
    sc.send(Kind::Status(report(&s1, 5))).await;
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.acknowledged}",
        "1",
    );
    wait_field(&ns, "gossipnetwork", "endpoints", "{.status.entries}", "5");
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.conditions[?(@.type==\"Converged\")].status}",
        "True",
    );
    wait_field(&ns, "gossipkey", "k0", "{.status.holders}", "1");

    // A CR change: a new version on the open stream.
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: endpoints, namespace: {ns}}}\nspec:\n  memberSelector: {{matchLabels: {{app: web}}}}\n  tables: [{{name: backends}}, {{name: health}}]\n"
    ));
    let s2 = next_where(&mut sc, "the health table", |s| {
        s.networks.first().is_some_and(|n| n.tables.len() == 2)
    })
    .await;
    assert!(s2.version > s1.version, "{} > {}", s2.version, s1.version);
    assert_ne!(s2.nonce, s1.nonce);
    // Not ACKed yet: nobody runs the new version.
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.acknowledged}",
        "0",
    );

    // NACK: a Degraded condition and a Warning Event with the detail.
    sc.send(Kind::Nack(Nack {
        version: s2.version,
        nonce: s2.nonce.clone(),
        error: Some(ErrorDetail {
            code: 3,
            message: "table health: this build knows no such table".into(),
        }),
    }))
    .await;
    let degraded = "{.status.conditions[?(@.type==\"Degraded\")]}";
    wait("the NACK in the status", || {
        let d = jsonpath(&ns, "gossipnetwork", "endpoints", degraded);
        d.contains("SnapshotRejected").then_some(())
    });
    let d = jsonpath(&ns, "gossipnetwork", "endpoints", degraded);
    assert!(
        d.contains(&format!(
            "member web-0 rejected snapshot version {} (code 3): table health: this build knows no such table",
            s2.version
        )),
        "{d}"
    );
    wait("a Warning Event with the NACK", || {
        let ev = kubectl(&[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "involvedObject.name=endpoints,type=Warning",
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
        ])
        .stdout;
        (ev.contains("SnapshotRejected") && ev.contains("this build knows no such table"))
            .then_some(())
    });

    // The ACK of the new version clears it.
    sc.send(Kind::Ack(Ack {
        version: s2.version,
        nonce: s2.nonce.clone(),
    }))
    .await;
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.acknowledged}",
        "1",
    );
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.conditions[?(@.type==\"Degraded\")].status}",
        "False",
    );

    // The token never reaches the log.
    assert!(
        !operator().log().contains(&t),
        "the token is in the operator log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_without_a_valid_token_for_a_member_are_refused_with_the_right_code() {
    let ns = setup("refuse");
    pod(&ns, "web-0", Some("default"));
    pod(&ns, "web-1", Some("default"));
    pod(&ns, "stray", None);
    wait("both members in the snapshot ConfigMap", || {
        let s = jsonpath(
            &ns,
            "configmap",
            "gossamer-snapshot-default",
            "{.data.version}",
        );
        (!s.is_empty()).then_some(())
    });

    let s = refused(None, control::hello(&ns, "web-0")).await;
    assert_eq!(s.code(), Code::Unauthenticated, "no token: {s:?}");
    assert!(s.message().contains("no bearer token"), "{s:?}");

    // (Without --audience, TokenRequest grants the API server's own
    // audiences, which in this control plane include gossamer.)
    let default_audience = token(&ns, "web-0", "vault");
    let s = refused(Some(&default_audience), control::hello(&ns, "web-0")).await;
    assert_eq!(s.code(), Code::Unauthenticated, "wrong audience: {s:?}");

    let s = refused(Some("not-a-token"), control::hello(&ns, "web-0")).await;
    assert_eq!(s.code(), Code::Unauthenticated, "garbage: {s:?}");

    // TokenRequest grants at least 10 minutes, so an expired token is made
    // the way the API server makes them: the same claims, signed with the
    // ServiceAccount signing key, with times an hour in the past.
    let good = token(&ns, "web-0", "gossamer");
    let expired = jwt::expired_copy(&good, &cp().pki().dir().join("service-account.key"));
    let s = refused(Some(&expired), control::hello(&ns, "web-0")).await;
    assert_eq!(s.code(), Code::Unauthenticated, "expired: {s:?}");
    // The forgery itself is sound: the same recipe with a future expiry is
    // accepted, so the refusal above is about the expiry alone.
    let fresh = jwt::resigned_copy(&good, &cp().pki().dir().join("service-account.key"));
    subscribe(Some(&fresh), control::hello(&ns, "web-0"))
        .await
        .expect("a re-signed, unexpired token is accepted");

    // web-1's token, web-0's hello.
    let other = token(&ns, "web-1", "gossamer");
    let s = refused(Some(&other), control::hello(&ns, "web-0")).await;
    assert_eq!(s.code(), Code::Unauthenticated, "another pod: {s:?}");
    assert!(s.message().contains("bound to Pod"), "{s:?}");

    // A Pod without the cluster label, with its own valid token.
    let stray = token(&ns, "stray", "gossamer");
    let s = refused(Some(&stray), control::hello(&ns, "stray")).await;
    assert_eq!(s.code(), Code::PermissionDenied, "not a member: {s:?}");
    assert!(
        s.message().contains("gossamer.dev/cluster=default"),
        "{s:?}"
    );

    // A member asking for another cluster.
    let good1 = token(&ns, "web-1", "gossamer");
    let mut h = control::hello(&ns, "web-1");
    h.cluster = "other".into();
    let s = refused(Some(&good1), h).await;
    assert_eq!(s.code(), Code::PermissionDenied, "another cluster: {s:?}");

    let log = operator().log();
    for t in [&default_audience, &good, &expired, &other, &stray, &good1] {
        assert!(!log.contains(t.as_str()), "a token is in the operator log");
    }
    assert!(log.contains("control stream refused"), "the log says why");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_survives_restarts_and_the_certificate_verifies_for_the_service_name() {
    operator();
    let ca = ca_bundle();
    let secret = |path: &str| jsonpath(OPERATOR_NAMESPACE, "secret", CA_SECRET, path);
    let uid = secret("{.metadata.uid}");
    let rv = secret("{.metadata.resourceVersion}");
    assert!(!uid.is_empty(), "the CA Secret exists");
    let stored = String::from_utf8(base64::decode(&secret("{.data.ca\\.crt}"))).expect("PEM");
    assert_eq!(stored.trim(), ca.trim(), "the bundle is the stored CA");

    // The serving certificate verifies for the Service's DNS names against
    // the bundle, and for no other name.
    for name in [
        "gossamer-operator",
        "gossamer-operator.gossamer-system",
        CONTROL_SERVICE_DNS,
        "gossamer-operator.gossamer-system.svc.cluster.local",
    ] {
        channel_to(operator().control_port(), name)
            .await
            .unwrap_or_else(|e| panic!("TLS to {name}: {e:?}"));
    }
    assert!(
        channel_to(operator().control_port(), "evil.example")
            .await
            .is_err(),
        "a name the certificate does not carry is refused"
    );

    // Another replica, started twice: it reuses the stored CA, and serves
    // a certificate the published bundle verifies (as a standby it answers
    // UNAVAILABLE, so sidecars go to the leader).
    for round in 0..2 {
        let standby = Operator::start(cp(), OperatorOptions::new(&format!("standby-{round}")))
            .expect("a second replica starts");
        let s = wait("the standby's control port", || {
            let rt = tokio::runtime::Handle::current();
            let port = standby.control_port();
            let r = tokio::task::block_in_place(|| {
                rt.block_on(subscribe_to(port, None, control::hello("x", "y")))
            });
            match r {
                Err(s)
                    if s.code() == Code::Unavailable && s.message().contains("does not lead") =>
                {
                    Some(s)
                }
                _ => None,
            }
        });
        assert_eq!(s.code(), Code::Unavailable);
        standby
            .terminate(Duration::from_secs(15))
            .expect("the standby stops cleanly");
        assert_eq!(
            secret("{.metadata.uid}"),
            uid,
            "the CA Secret was not replaced"
        );
        assert_eq!(secret("{.metadata.resourceVersion}"), rv, "nor rewritten");
        assert_eq!(ca_bundle().trim(), ca.trim(), "the bundle is unchanged");
    }
}

/// ACKs the snapshot and reports running it (its keyring, its primary).
async fn run(sc: &Sidecar, s: &ConfigSnapshot) {
    sc.send(Kind::Ack(Ack {
        version: s.version,
        nonce: s.nonce.clone(),
    }))
    .await;
    sc.send(Kind::Status(report(s, 0))).await;
}

fn state_of(s: &ConfigSnapshot, name: &str) -> Option<i32> {
    s.keys.iter().find(|k| k.name == name).map(|k| k.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotates_as_the_member_reports_its_keyring() {
    use gossamer_proto::control::v1::KeyState;
    let ns = setup("rotate");
    pod(&ns, "web-0", Some("default"));
    let key = |name: &str| {
        format!("apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{}}\n")
    };
    apply(&key("k0"));
    wait_field(&ns, "gossipkey", "k0", "{.status.phase}", "Primary");
    let t = token(&ns, "web-0", "gossamer");
    let mut sc = subscribe(Some(&t), control::hello(&ns, "web-0"))
        .await
        .expect("accepted");
    let s = next_where(&mut sc, "k0", |s| s.keys.len() == 1).await;
    run(&sc, &s).await;
    wait_field(&ns, "gossipkey", "k0", "{.status.holders}", "1");

    // A new key is distributed first: the member does not hold it yet.
    apply(&key("k1"));
    let s = next_where(&mut sc, "k1 as a secondary", |s| {
        state_of(s, "k1") == Some(KeyState::Secondary as i32)
    })
    .await;
    assert_eq!(state_of(&s, "k0"), Some(KeyState::Primary as i32));
    wait_field(&ns, "gossipkey", "k1", "{.status.phase}", "Distributing");
    // The member runs it (holds both): k1 becomes the primary.
    run(&sc, &s).await;
    let s = next_where(&mut sc, "k1 as the primary", |s| {
        state_of(s, "k1") == Some(KeyState::Primary as i32)
    })
    .await;
    wait_field(&ns, "gossipkey", "k1", "{.status.phase}", "Primary");
    run(&sc, &s).await;

    // k0 is deleted: it leaves the keyring once the member reports it no
    // longer encrypts with it, and then its finalizer goes.
    assert!(kubectl(&["delete", "gossipkey", "k0", "-n", &ns, "--wait=false"]).success());
    let s = next_where(&mut sc, "k0 out of the keyring", |s| {
        state_of(s, "k0").is_none()
    })
    .await;
    run(&sc, &s).await;
    wait("the GossipKey k0 gone", || {
        (!kubectl(&["get", "gossipkey", "k0", "-n", &ns]).success()).then_some(())
    });
    assert_eq!(s.keys.len(), 1);
    assert_eq!(s.primary_fingerprint, s.keys[0].fingerprint);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_certificate_is_renewed_without_dropping_open_streams() {
    let ns = setup("renew");
    pod(&ns, "web-0", Some("default"));
    let net = |tables: &str| {
        format!(
            "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: renewal, namespace: {ns}}}\nspec:\n  memberSelector: {{matchLabels: {{app: web}}}}\n  tables: [{tables}]\n"
        )
    };
    apply(&net("{name: a}"));
    let t = token(&ns, "web-0", "gossamer");
    let mut sc = subscribe(Some(&t), control::hello(&ns, "web-0"))
        .await
        .expect("accepted");
    let s1 = next_where(&mut sc, "the network", |s| s.networks.len() == 1).await;
    let renewals = || {
        operator()
            .log()
            .matches("renewed the control-stream serving certificate")
            .count()
    };
    let before = renewals();
    let deadline = Instant::now() + Duration::from_secs(75);
    while renewals() == before {
        assert!(
            Instant::now() < deadline,
            "no renewal of the one-minute certificate within 75 s; log tail:\n{}",
            tail(&operator().log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The stream opened under the old certificate still carries versions.
    apply(&net("{name: a}, {name: b}"));
    let s2 = next_where(&mut sc, "table b", |s| s.networks[0].tables.len() == 2).await;
    assert!(s2.version > s1.version);
    // New connections get the new certificate, which the bundle verifies.
    subscribe(Some(&t), control::hello(&ns, "web-0"))
        .await
        .expect("a new stream after the renewal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_is_plain_text_and_says_so_at_start() {
    operator();
    let mut opts = OperatorOptions::new("dev-standby");
    opts.control_insecure = true;
    let dev = Operator::start(cp(), opts).expect("a development-mode replica starts");
    assert!(
        dev.log().contains("DEVELOPMENT MODE"),
        "no warning at start; log:\n{}",
        tail(&dev.log(), 20)
    );
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", dev.control_port()))
        .expect("a valid URI")
        .connect()
        .await
        .expect("plain-text gRPC");
    let (out, rx) = mpsc::channel(1);
    out.send(SidecarMessage {
        kind: Some(Kind::Hello(control::hello("x", "y"))),
    })
    .await
    .expect("queued");
    let s = ControlClient::new(channel)
        .subscribe(Request::new(ReceiverStream::new(rx)))
        .await
        .expect_err("a standby serves no stream");
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    dev.terminate(Duration::from_secs(15))
        .expect("it stops cleanly");
}

/// Base64 (standard and URL-safe), for the Secret's data and for JWTs.
mod base64 {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn decode(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' | b'-' => 62,
                b'/' | b'_' => 63,
                _ => continue,
            };
            acc = (acc << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    pub fn encode_url(b: &[u8]) -> String {
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk.len();
            let v = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..=n {
                let c = STD[((v >> (18 - 6 * i)) & 63) as usize];
                out.push(match c {
                    b'+' => '-',
                    b'/' => '_',
                    c => c as char,
                });
            }
        }
        out
    }
}

/// Re-signing a ServiceAccount token (ES256) with other times.
mod jwt {
    use std::path::Path;

    use rcgen::{KeyPair, SigningKey};

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64
    }

    /// `token` with `iat`, `nbf` and `exp` set as given, signed with the key
    /// in `key_file` (PKCS#8 PEM, P-256).
    fn with_times(token: &str, key_file: &Path, iat: i64, exp: i64) -> String {
        let mut parts = token.split('.');
        let header = parts.next().expect("a JWT header");
        let claims = super::base64::decode(parts.next().expect("JWT claims"));
        let mut claims: serde_json::Value = serde_json::from_slice(&claims).expect("JSON claims");
        claims["iat"] = iat.into();
        claims["nbf"] = iat.into();
        claims["exp"] = exp.into();
        let body = super::base64::encode_url(&serde_json::to_vec(&claims).expect("JSON"));
        let signed = format!("{header}.{body}");
        let pem = std::fs::read_to_string(key_file).expect("the signing key is readable");
        let key = KeyPair::from_pem(&pem).expect("a P-256 key");
        let der = key.sign(signed.as_bytes()).expect("signs");
        format!("{signed}.{}", super::base64::encode_url(&fixed(&der)))
    }

    /// An hour in the past: expired.
    pub fn expired_copy(token: &str, key_file: &Path) -> String {
        let t = now();
        with_times(token, key_file, t - 7200, t - 3600)
    }

    /// Valid for ten more minutes.
    pub fn resigned_copy(token: &str, key_file: &Path) -> String {
        let t = now();
        with_times(token, key_file, t - 60, t + 600)
    }

    /// An ASN.1 ECDSA signature (SEQUENCE of two INTEGERs) as JWS wants
    /// it: r and s, 32 bytes each.
    fn fixed(der: &[u8]) -> Vec<u8> {
        let mut i = 2; // SEQUENCE tag and (short) length
        let mut out = Vec::new();
        for _ in 0..2 {
            assert_eq!(der[i], 0x02, "an INTEGER");
            let len = der[i + 1] as usize;
            let mut v = &der[i + 2..i + 2 + len];
            while v.len() > 32 && v[0] == 0 {
                v = &v[1..];
            }
            out.extend(std::iter::repeat_n(0u8, 32 - v.len()));
            out.extend_from_slice(v);
            i += 2 + len;
        }
        out
    }
}
