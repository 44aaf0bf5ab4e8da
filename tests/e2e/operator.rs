//! The operator against a real etcd + kube-apiserver +
//! kube-controller-manager: CRDs applied with kubectl, validation by the
//! API server, and every reconciler driven as a user would, with the
//! operator running as a separate process on its own ServiceAccount token.
//!
//! One operator serves every test of this binary; each test works in a
//! namespace of its own.

// These tests drive real processes: their deadlines are wall-clock.
#![allow(clippy::disallowed_methods)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gossamer_tests::kube::ControlPlane;
use gossamer_tests::operator::{Operator, OperatorOptions, OPERATOR_ACCOUNT, OPERATOR_NAMESPACE};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(30);

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane starts (tests/kube/install.sh builds it)")
}

fn operator() -> &'static Operator {
    static OP: OnceLock<Operator> = OnceLock::new();
    OP.get_or_init(|| {
        let op = Operator::start(cp(), OperatorOptions::new("solo")).expect("the operator starts");
        let deadline = Instant::now() + WAIT;
        while !op.is_leader() {
            assert!(
                Instant::now() < deadline,
                "the only replica never took the Lease; log:\n{}",
                op.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        op
    })
}

fn kubectl(args: &[&str]) -> gossamer_tests::KubectlOutput {
    cp().kubectl(args).expect("kubectl runs")
}

fn apply(yaml: &str) {
    cp().apply(yaml);
}

/// `kubectl get KIND NAME -n NS -o jsonpath=PATH`, "" when missing.
fn jsonpath(ns: &str, kind: &str, name: &str, path: &str) -> String {
    cp().jsonpath(ns, kind, name, path)
}

/// Polls `f` until it returns `Ok` or `WAIT` passes; panics with `what`
/// and the last value seen.
fn eventually<T>(what: &str, f: impl FnMut() -> Result<T, String>) -> T {
    eventually_within(WAIT, what, f)
}

fn eventually_within<T>(wait: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + wait;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                panic!(
                    "{what}: not within {wait:?}; last seen: {last}\noperator log tail:\n{}",
                    tail(&operator().log(), 30)
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn wait_field(ns: &str, kind: &str, name: &str, path: &str, want: &str) {
    eventually(&format!("{kind}/{name} {path} == {want:?}"), || {
        let v = jsonpath(ns, kind, name, path);
        if v == want {
            Ok(())
        } else {
            Err(v)
        }
    })
}

fn setup(prefix: &str) -> String {
    operator();
    cp().namespace(prefix).expect("a fresh namespace")
}

fn pod_yaml(ns: &str, name: &str, cluster: Option<&str>, app: &str) -> String {
    let cluster = cluster
        .map(|c| format!("\n    gossamer.dev/cluster: {c}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: {app}{cluster}\nspec:\n  containers:\n  - name: app\n    image: gossamer.dev/none:0\n"
    )
}

fn snapshot_version(ns: &str, cluster: &str) -> u64 {
    jsonpath(
        ns,
        "configmap",
        &format!("gossamer-snapshot-{cluster}"),
        "{.data.version}",
    )
    .parse()
    .unwrap_or(0)
}

fn snapshot_json(ns: &str, cluster: &str) -> serde_json::Value {
    let raw = jsonpath(
        ns,
        "configmap",
        &format!("gossamer-snapshot-{cluster}"),
        "{.data.snapshot\\.json}",
    );
    serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null)
}

fn events_of(ns: &str, name: &str) -> String {
    kubectl(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "custom-columns=TYPE:.type,REASON:.reason,NOTE:.note,MESSAGE:.message",
    ])
    .stdout
}

fn wait_event(ns: &str, name: &str, needle: &str) -> String {
    eventually(&format!("an Event on {name} containing {needle:?}"), || {
        let e = events_of(ns, name);
        if e.contains(needle) {
            Ok(e)
        } else {
            Err(e)
        }
    })
}

#[test]
fn kubectl_get_gossamer_lists_every_kind_with_its_columns() {
    let ns = setup("columns");
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: endpoints, namespace: {ns}}}\nspec:\n  memberSelector: {{matchLabels: {{app: checkout}}}}\n  tables: [{{name: backends}}, {{name: health}}]\n---\napiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: key-0, namespace: {ns}}}\nspec: {{}}\n---\napiVersion: gossamer.dev/v1alpha1\nkind: BootstrapPeers\nmetadata: {{name: seeds, namespace: {ns}}}\nspec:\n  static: [\"seed.shop.svc:7946\"]\n"
    ));
    wait_field(&ns, "gossipkey", "key-0", "{.status.phase}", "Primary");
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.conditions[?(@.type==\"Ready\")].status}",
        "True",
    );
    let out = kubectl(&["get", "gossamer", "-n", &ns]);
    assert!(out.success(), "{out:?}");
    for needle in [
        "gossipnetwork.gossamer.dev/endpoints",
        "gossipkey.gossamer.dev/key-0",
        "bootstrappeers.gossamer.dev/seeds",
        "MEMBERS",
        "ACKNOWLEDGED",
        "PHASE",
        "FINGERPRINT",
        "HOLDERS",
        "PEERS",
        "AGE",
        "Primary",
        "sha256:",
    ] {
        assert!(
            out.stdout.contains(needle),
            "`kubectl get gossamer` lacks {needle:?}:\n{}",
            out.stdout
        );
    }
    // Short names work.
    assert!(kubectl(&["get", "gnet,gkey,gpeers", "-n", &ns]).success());
}

/// Each validation rule of the schema, refused by the API server itself
/// with a message a person can act on.
#[test]
fn the_api_server_refuses_invalid_objects_with_readable_messages() {
    let ns = setup("invalid");
    let refused = |yaml: String, needle: &str| {
        let out = cp().kubectl_apply_stdin(&yaml).expect("kubectl runs");
        assert!(
            !out.success(),
            "the API server accepted an invalid object:\n{yaml}"
        );
        assert!(
            out.stderr.contains(needle),
            "refusal lacks {needle:?}:\n{}",
            out.stderr
        );
    };
    let net = |name: &str, spec: &str| {
        format!("apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n")
    };
    let key = |name: &str, spec: &str| {
        format!("apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n")
    };
    let peers = |name: &str, spec: &str| {
        format!("apiVersion: gossamer.dev/v1alpha1\nkind: BootstrapPeers\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n")
    };

    // spec.cluster: a DNS label, and immutable (on every kind).
    refused(net("n-upper", "{cluster: Blue}"), "spec.cluster");
    apply(&net("n-immutable", "{cluster: blue}"));
    refused(
        net("n-immutable", "{cluster: green}"),
        "spec.cluster is immutable",
    );
    apply(&key("k-immutable", "{cluster: blue}"));
    refused(
        key("k-immutable", "{cluster: green}"),
        "spec.cluster is immutable",
    );
    apply(&peers("p-immutable", "{cluster: blue, static: [\"a:1\"]}"));
    refused(
        peers("p-immutable", "{cluster: green, static: [\"a:1\"]}"),
        "spec.cluster is immutable",
    );
    // Tables: unique, well-formed names.
    refused(
        net("n-dup", "{tables: [{name: a}, {name: a}]}"),
        "table names must be unique",
    );
    refused(
        net("n-badtable", "{tables: [{name: \"Bad Name\"}]}"),
        "spec.tables[0].name",
    );
    // secretRef names both parts, and cannot change.
    refused(
        key("k-half", "{secretRef: {name: s}}"),
        "secretRef must name both the Secret (name) and the key inside it (key)",
    );
    apply(&key("k-ref", "{secretRef: {name: s, key: k}}"));
    refused(
        key("k-ref", "{secretRef: {name: other, key: k}}"),
        "spec.secretRef is immutable",
    );
    // rotateAfter is a duration.
    refused(key("k-rotate", "{rotateAfter: soon}"), "spec.rotateAfter");
    // Lengths: a cluster name is a DNS label (at most 63), at most 64
    // tables, and a Secret data key has Secret-key syntax.
    refused(
        net("n-long", &format!("{{cluster: {}}}", "c".repeat(64))),
        "spec.cluster",
    );
    let many: Vec<String> = (0..65).map(|i| format!("{{name: t{i}}}")).collect();
    refused(
        net("n-many", &format!("{{tables: [{}]}}", many.join(", "))),
        "spec.tables",
    );
    refused(
        key("k-badkey", "{secretRef: {name: s, key: \"a/b\"}}"),
        "spec.secretRef.key",
    );
    // Peers: some source, host:port entries, a bounded count.
    refused(peers("p-empty", "{}"), "name at least one source of peers");
    refused(
        peers("p-noport", "{static: [\"seed.shop.svc\"]}"),
        "spec.static[0]",
    );
    refused(
        peers("p-count", "{fromMembers: {count: 0}}"),
        "spec.fromMembers.count",
    );
    refused(
        peers("p-count", "{fromMembers: {count: 17}}"),
        "spec.fromMembers.count",
    );
}

#[test]
fn a_network_counts_its_members_and_follows_updates_and_deletes() {
    let ns = setup("network");
    for (i, app) in ["checkout", "checkout", "other"].iter().enumerate() {
        apply(&pod_yaml(&ns, &format!("p{i}"), Some("default"), app));
    }
    // A Pod without a sidecar is no member.
    apply(&pod_yaml(&ns, "plain", None, "checkout"));
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: endpoints, namespace: {ns}}}\nspec:\n  memberSelector: {{matchLabels: {{app: checkout}}}}\n  tables: [{{name: backends}}]\n"
    ));
    wait_field(&ns, "gossipnetwork", "endpoints", "{.status.members}", "2");
    let id = jsonpath(&ns, "gossipnetwork", "endpoints", "{.status.networkId}");
    assert_eq!(id.len(), 12, "network id {id:?}");
    assert_eq!(
        jsonpath(
            &ns,
            "gossipnetwork",
            "endpoints",
            "{.status.observedGeneration}"
        ),
        "1"
    );
    wait_event(&ns, "endpoints", "InSnapshot");
    let v1 = eventually("a snapshot naming the network", || {
        let s = snapshot_json(&ns, "default");
        let members = s["networks"][0]["members"].clone();
        if members == serde_json::json!(["p0", "p1"]) {
            Ok(snapshot_version(&ns, "default"))
        } else {
            Err(s.to_string())
        }
    });
    assert_eq!(
        snapshot_json(&ns, "default")["label"],
        format!("{ns}/default")
    );

    // Update: another table and a wider selector.
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: endpoints, namespace: {ns}}}\nspec:\n  memberSelector: {{matchExpressions: [{{key: app, operator: In, values: [checkout, other]}}]}}\n  tables: [{{name: backends}}, {{name: health}}]\n"
    ));
    wait_field(&ns, "gossipnetwork", "endpoints", "{.status.members}", "3");
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.observedGeneration}",
        "2",
    );
    // A new member Pod, then a member leaving.
    apply(&pod_yaml(&ns, "p3", Some("default"), "other"));
    wait_field(&ns, "gossipnetwork", "endpoints", "{.status.members}", "4");
    assert!(kubectl(&[
        "delete",
        "pod",
        "p0",
        "-n",
        &ns,
        "--wait=false",
        "--grace-period=0",
        "--force"
    ])
    .success());
    wait_field(&ns, "gossipnetwork", "endpoints", "{.status.members}", "3");
    let v2 = eventually("a snapshot with both tables and the new members", || {
        let s = snapshot_json(&ns, "default");
        let ok = s["networks"][0]["tables"] == serde_json::json!(["backends", "health"])
            && s["networks"][0]["members"] == serde_json::json!(["p1", "p2", "p3"]);
        if ok {
            Ok(snapshot_version(&ns, "default"))
        } else {
            Err(s.to_string())
        }
    });
    assert!(v2 > v1, "versions grow: {v1} then {v2}");

    // Delete: the network leaves the snapshot.
    assert!(kubectl(&["delete", "gossipnetwork", "endpoints", "-n", &ns]).success());
    eventually("the network gone from the snapshot", || {
        let s = snapshot_json(&ns, "default");
        if s["networks"] == serde_json::json!([]) {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    assert!(snapshot_version(&ns, "default") > v2);
}

#[test]
fn an_invalid_selector_gets_a_condition_and_an_event_and_the_rest_keeps_working() {
    let ns = setup("selector");
    apply(&pod_yaml(&ns, "p0", Some("default"), "a"));
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: bad, namespace: {ns}}}\nspec:\n  memberSelector: {{matchExpressions: [{{key: app, operator: Like, values: [a]}}]}}\n---\napiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: good, namespace: {ns}}}\nspec:\n  memberSelector: {{matchLabels: {{app: a}}}}\n"
    ));
    wait_field(
        &ns,
        "gossipnetwork",
        "bad",
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
        "InvalidSelector",
    );
    let msg = jsonpath(
        &ns,
        "gossipnetwork",
        "bad",
        "{.status.conditions[?(@.type==\"Ready\")].message}",
    );
    assert!(
        msg.contains("operator \"Like\" is not one of In, NotIn, Exists, DoesNotExist"),
        "{msg}"
    );
    assert_eq!(
        jsonpath(
            &ns,
            "gossipnetwork",
            "bad",
            "{.status.conditions[?(@.type==\"Degraded\")].status}"
        ),
        "True"
    );
    let ev = wait_event(&ns, "bad", "InvalidSelector");
    assert!(ev.contains("Warning"), "{ev}");
    wait_field(&ns, "gossipnetwork", "good", "{.status.members}", "1");
    eventually("only the good network in the snapshot", || {
        let s = snapshot_json(&ns, "default");
        let names: Vec<_> = s["networks"]
            .as_array()
            .map(|a| a.iter().map(|n| n["name"].clone()).collect())
            .unwrap_or_default();
        if names == [serde_json::json!("good")] {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    // Fixing it makes it Ready.
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: bad, namespace: {ns}}}\nspec:\n  memberSelector: {{matchExpressions: [{{key: app, operator: In, values: [a]}}]}}\n"
    ));
    wait_field(
        &ns,
        "gossipnetwork",
        "bad",
        "{.status.conditions[?(@.type==\"Ready\")].status}",
        "True",
    );
    wait_field(&ns, "gossipnetwork", "bad", "{.status.members}", "1");
}

fn secret_yaml(ns: &str, name: &str, key: &str, bytes: &[u8]) -> String {
    let b64 = base64(bytes);
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{{key}: {b64}}}\n")
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn fingerprint(bytes: &[u8]) -> String {
    format!("sha256:{}", &hex(&Sha256::digest(bytes))[..8])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_key_waits_for_its_secret_then_becomes_primary_and_bad_secrets_are_explained() {
    let ns = setup("keys");
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: k0, namespace: {ns}}}\nspec: {{secretRef: {{name: gossip, key: key}}}}\n"
    ));
    wait_field(&ns, "gossipkey", "k0", "{.status.phase}", "Pending");
    wait_field(
        &ns,
        "gossipkey",
        "k0",
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
        "SecretMissing",
    );
    let ev = wait_event(&ns, "k0", "SecretMissing");
    assert!(
        ev.contains("Warning") && ev.contains(&format!("Secret {ns}/gossip does not exist")),
        "{ev}"
    );

    // The wrong length: explained with the length, never the bytes.
    let short = [7u8; 20];
    apply(&secret_yaml(&ns, "gossip", "key", &short));
    wait_field(
        &ns,
        "gossipkey",
        "k0",
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
        "KeyLength",
    );
    let msg = jsonpath(
        &ns,
        "gossipkey",
        "k0",
        "{.status.conditions[?(@.type==\"Ready\")].message}",
    );
    assert!(
        msg.contains("is 20 bytes; an AES-GCM key must be exactly 16, 24 or 32 raw bytes"),
        "{msg}"
    );

    // Fixed: a good key becomes the primary (no members need it first).
    let good: Vec<u8> = (0u8..32).collect();
    apply(&secret_yaml(&ns, "gossip", "key", &good));
    wait_field(&ns, "gossipkey", "k0", "{.status.phase}", "Primary");
    assert_eq!(
        jsonpath(&ns, "gossipkey", "k0", "{.status.fingerprint}"),
        fingerprint(&good)
    );
    wait_event(&ns, "k0", "Pending -> Primary");

    // Another namespace's Secret is refused.
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: k-cross, namespace: {ns}}}\nspec: {{secretRef: {{name: gossip, key: key, namespace: kube-system}}}}\n"
    ));
    wait_field(
        &ns,
        "gossipkey",
        "k-cross",
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
        "CrossNamespaceRef",
    );
    // A missing data key names the ones present.
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: k-datakey, namespace: {ns}}}\nspec: {{secretRef: {{name: gossip, key: other}}}}\n"
    ));
    wait_field(
        &ns,
        "gossipkey",
        "k-datakey",
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
        "SecretKeyMissing",
    );
    // The good key stays primary and in the snapshot throughout.
    assert_eq!(
        jsonpath(&ns, "gossipkey", "k0", "{.status.phase}"),
        "Primary"
    );
    eventually("only k0 in the snapshot's keyring", || {
        let s = snapshot_json(&ns, "default");
        if s["keys"]
            == serde_json::json!([{"name": "k0", "fingerprint": fingerprint(&good), "state": "Primary"}])
        {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });

    // Key bytes appear nowhere: status, Events, the snapshot ConfigMap,
    // the operator's log.
    let secrets = [hex(&good), base64(&good), hex(&short), base64(&short)];
    let everything = [
        kubectl(&["get", "gossipkeys", "-n", &ns, "-o", "yaml"]).stdout,
        kubectl(&["get", "events", "-n", &ns, "-o", "yaml"]).stdout,
        kubectl(&["get", "configmaps", "-n", &ns, "-o", "yaml"]).stdout,
        operator().log(),
    ];
    for text in &everything {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "key material leaked");
        }
    }
}

#[test]
fn a_generated_key_is_owned_by_its_gossipkey_and_collected_with_it() {
    let ns = setup("genkey");
    apply(&format!("apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: auto, namespace: {ns}}}\nspec: {{}}\n"));
    wait_field(&ns, "gossipkey", "auto", "{.status.phase}", "Primary");
    let secret = jsonpath(&ns, "gossipkey", "auto", "{.status.secretName}");
    assert_eq!(secret, "gossamer-key-auto");
    let owner = jsonpath(
        &ns,
        "secret",
        &secret,
        "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    );
    assert_eq!(owner, "GossipKey/auto");
    let len = jsonpath(&ns, "secret", &secret, "{.data.key}").len();
    assert_eq!(len, 44, "32 bytes are 44 base64 characters");
    wait_event(&ns, "auto", "KeyGenerated");
    assert_eq!(
        jsonpath(&ns, "gossipkey", "auto", "{.metadata.finalizers[0]}"),
        "gossamer.dev/keyring",
        "the keyring finalizer is on"
    );
    // No members: nothing encrypts with it, so deletion goes through, and
    // the real garbage collector removes the owned Secret.
    assert!(kubectl(&["delete", "gossipkey", "auto", "-n", &ns, "--wait=false"]).success());
    eventually("the GossipKey gone", || {
        let out = kubectl(&["get", "gossipkey", "auto", "-n", &ns]);
        if !out.success() && out.stderr.contains("NotFound") {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });
    // kube-controller-manager's garbage collector picks up new resource
    // types on its 30 s discovery sync; the CRDs may be younger than that.
    eventually_within(
        Duration::from_secs(120),
        "the owned Secret collected by the garbage collector",
        || {
            let out = kubectl(&["get", "secret", &secret, "-n", &ns]);
            if !out.success() && out.stderr.contains("NotFound") {
                Ok(())
            } else {
                Err(out.stdout)
            }
        },
    );
}

/// The Ready condition's reason of GossipKey `name`, once it is `want`.
fn wait_key_reason(ns: &str, name: &str, want: &str) {
    wait_field(
        ns,
        "gossipkey",
        name,
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
        want,
    );
}

/// Makes the operator reconcile GossipKey `name` now (it re-reads Secrets
/// on any change of the key, and otherwise only at its resync).
fn touch_key(ns: &str, name: &str, n: u32) {
    let touch = format!("test.gossamer.dev/touch={n}");
    assert!(kubectl(&[
        "annotate",
        "--overwrite",
        "gossipkey",
        name,
        "-n",
        ns,
        &touch
    ])
    .success());
}

#[test]
fn a_lost_generated_secret_is_not_regenerated_and_a_restored_copy_is_used() {
    let ns = setup("lostkey");
    apply(&format!("apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: gen, namespace: {ns}}}\nspec: {{}}\n"));
    wait_field(&ns, "gossipkey", "gen", "{.status.phase}", "Primary");
    let fp = jsonpath(&ns, "gossipkey", "gen", "{.status.fingerprint}");
    let recorded = "{.metadata.annotations.gossamer\\.dev/generated-fingerprint}";
    wait_field(&ns, "gossipkey", "gen", recorded, &fp);
    let secret = "gossamer-key-gen";
    let b64 = jsonpath(&ns, "secret", secret, "{.data.key}");
    assert_eq!(b64.len(), 44, "32 bytes are 44 base64 characters");

    // The Secret is deleted: the key says so, and no new bytes appear.
    assert!(kubectl(&["delete", "secret", secret, "-n", &ns]).success());
    touch_key(&ns, "gen", 1);
    wait_key_reason(&ns, "gen", "GeneratedSecretLost");
    let msg = jsonpath(
        &ns,
        "gossipkey",
        "gen",
        "{.status.conditions[?(@.type==\"Ready\")].message}",
    );
    assert!(
        msg.contains(&format!(
            "Secret {ns}/{secret} held this key's generated bytes (fingerprint {fp}) and is gone"
        )) && msg.contains("restore the Secret with the same bytes"),
        "{msg}"
    );
    let out = kubectl(&["get", "secret", secret, "-n", &ns]);
    assert!(
        !out.success() && out.stderr.contains("NotFound"),
        "the operator generated the Secret again: {}",
        out.stdout
    );
    wait_event(&ns, "gen", "GeneratedSecretLost");

    // Other bytes under that name are not taken for the key's.
    let other: Vec<u8> = (100u8..132).collect();
    apply(&secret_yaml(&ns, secret, "key", &other));
    touch_key(&ns, "gen", 2);
    wait_key_reason(&ns, "gen", "GeneratedSecretTaken");

    // A restored copy of the same bytes (no owner reference) is used.
    apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}, namespace: {ns}}}\ndata: {{key: {b64}}}\n"
    ));
    touch_key(&ns, "gen", 3);
    wait_key_reason(&ns, "gen", "Primary");
    assert_eq!(
        jsonpath(&ns, "gossipkey", "gen", "{.status.fingerprint}"),
        fp
    );
    assert_eq!(
        jsonpath(&ns, "gossipkey", "gen", "{.status.phase}"),
        "Primary"
    );
}

#[test]
fn a_deleted_key_is_held_while_members_may_still_use_it() {
    let ns = setup("retire");
    apply(&pod_yaml(&ns, "member", Some("default"), "a"));
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: old, namespace: {ns}}}\nspec: {{}}\n"
    ));
    wait_field(&ns, "gossipkey", "old", "{.status.phase}", "Primary");
    assert_eq!(jsonpath(&ns, "gossipkey", "old", "{.status.members}"), "1");
    assert!(kubectl(&["delete", "gossipkey", "old", "-n", &ns, "--wait=false"]).success());
    wait_field(&ns, "gossipkey", "old", "{.status.phase}", "Retiring");
    // The member has not said it stopped using the key: it stays, in the
    // keyring, held by the finalizer.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        jsonpath(&ns, "gossipkey", "old", "{.status.phase}"),
        "Retiring"
    );
    assert!(!jsonpath(&ns, "gossipkey", "old", "{.metadata.deletionTimestamp}").is_empty());
    let s = snapshot_json(&ns, "default");
    // Its only key: the keyring keeps encrypting with it meanwhile.
    assert_eq!(s["keys"][0]["state"], "Primary", "{s}");
    // Without members nobody can use it: released.
    assert!(kubectl(&[
        "delete",
        "pod",
        "member",
        "-n",
        &ns,
        "--grace-period=0",
        "--force"
    ])
    .success());
    eventually("the key released", || {
        let out = kubectl(&["get", "gossipkey", "old", "-n", &ns]);
        if !out.success() {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });
    wait_event(&ns, "old", "left every keyring");
}

fn timestamp(s: &str) -> k8s_openapi::jiff::Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("not a timestamp: {s:?}: {e}"))
}

#[test]
fn rotate_after_makes_a_successor_on_schedule_and_retires_the_key_once_it_is_primary() {
    let ns = setup("rotate");
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: first, namespace: {ns}}}\nspec: {{rotateAfter: 1m}}\n"
    ));
    wait_field(&ns, "gossipkey", "first", "{.status.phase}", "Primary");
    let created = timestamp(&jsonpath(
        &ns,
        "gossipkey",
        "first",
        "{.metadata.creationTimestamp}",
    ));
    let due = eventually("status.nextRotation", || {
        let v = jsonpath(&ns, "gossipkey", "first", "{.status.nextRotation}");
        if v.is_empty() {
            Err(v)
        } else {
            Ok(timestamp(&v))
        }
    });
    assert_eq!(
        due.as_second() - created.as_second(),
        60,
        "due a minute after creation"
    );
    // Not before it is due.
    assert!(!kubectl(&["get", "gossipkey", "first-r1", "-n", &ns]).success());

    let took = Instant::now();
    eventually_within(Duration::from_secs(120), "the successor first-r1", || {
        let v = jsonpath(
            &ns,
            "gossipkey",
            "first-r1",
            "{.metadata.creationTimestamp}",
        );
        if v.is_empty() {
            Err(v)
        } else {
            Ok(())
        }
    });
    eprintln!(
        "successor after {:.1} s of waiting",
        took.elapsed().as_secs_f64()
    );
    let born = timestamp(&jsonpath(
        &ns,
        "gossipkey",
        "first-r1",
        "{.metadata.creationTimestamp}",
    ));
    assert!(born >= due, "made at {born}, due at {due}");
    assert_eq!(
        jsonpath(
            &ns,
            "gossipkey",
            "first-r1",
            "{.spec.rotateAfter} {.spec.cluster} {.metadata.labels.gossamer\\.dev/predecessor} {.metadata.labels.gossamer\\.dev/rotation-index}"
        ),
        "1m default first 1"
    );
    wait_event(&ns, "first", "created GossipKey");
    // No members: every live member (none) holds it, so it is primary at
    // once, and the first key is deleted and released.
    wait_field(&ns, "gossipkey", "first-r1", "{.status.phase}", "Primary");
    eventually("the first key gone", || {
        let out = kubectl(&["get", "gossipkey", "first", "-n", &ns]);
        if !out.success() && out.stderr.contains("NotFound") {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });
    wait_event(
        &ns,
        "first",
        "is primary on every member; deleting this key",
    );
    wait_event(&ns, "first", "left every keyring");
    // The chain goes on.
    let next = timestamp(&jsonpath(
        &ns,
        "gossipkey",
        "first-r1",
        "{.status.nextRotation}",
    ));
    assert_eq!(next.as_second() - born.as_second(), 60);
    let s = snapshot_json(&ns, "default");
    assert_eq!(s["keys"].as_array().map(Vec::len), Some(1), "{s}");

    // A rotateAfter the schema lets through but the operator cannot use:
    // the key still works, and its status says why it will not rotate.
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: quick, namespace: {ns}}}\nspec: {{rotateAfter: 30s}}\n"
    ));
    wait_field(
        &ns,
        "gossipkey",
        "quick",
        "{.status.conditions[?(@.type==\"Degraded\")].reason}",
        "InvalidRotateAfter",
    );
    assert_eq!(
        jsonpath(
            &ns,
            "gossipkey",
            "quick",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True"
    );
    let msg = jsonpath(
        &ns,
        "gossipkey",
        "quick",
        "{.status.conditions[?(@.type==\"Degraded\")].message}",
    );
    assert!(
        msg.contains("\"30s\"") && msg.contains("at least 1m"),
        "{msg}"
    );
}

#[test]
fn bootstrap_peers_list_static_seeds_then_the_longest_lived_ready_members() {
    let ns = setup("peers");
    for (i, start) in [
        "2026-11-01T00:00:30Z",
        "2026-11-01T00:00:10Z",
        "2026-11-01T00:00:20Z",
    ]
    .iter()
    .enumerate()
    {
        apply(&pod_yaml(&ns, &format!("m{i}"), Some("default"), "a"));
        let status = format!(
            "{{\"status\":{{\"podIP\":\"10.9.0.{i}\",\"podIPs\":[{{\"ip\":\"10.9.0.{i}\"}}],\"startTime\":\"{start}\",\"conditions\":[{{\"type\":\"Ready\",\"status\":\"True\"}}]}}}}"
        );
        let out = kubectl(&[
            "patch",
            "pod",
            &format!("m{i}"),
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ]);
        assert!(out.success(), "{out:?}");
    }
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: BootstrapPeers\nmetadata: {{name: seeds, namespace: {ns}}}\nspec:\n  static: [\"seed.{ns}.svc:7946\"]\n  fromMembers: {{count: 2}}\n"
    ));
    wait_field(
        &ns,
        "bootstrappeers",
        "seeds",
        "{.status.peers}",
        &format!("[\"seed.{ns}.svc:7946\",\"10.9.0.1:7946\",\"10.9.0.2:7946\"]"),
    );
    eventually("the peers in the snapshot", || {
        let s = snapshot_json(&ns, "default");
        if s["peers"].as_array().map(Vec::len) == Some(3) {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    // The oldest member goes: the next one takes its place.
    assert!(kubectl(&[
        "delete",
        "pod",
        "m1",
        "-n",
        &ns,
        "--grace-period=0",
        "--force"
    ])
    .success());
    wait_field(
        &ns,
        "bootstrappeers",
        "seeds",
        "{.status.peers}",
        &format!("[\"seed.{ns}.svc:7946\",\"10.9.0.2:7946\",\"10.9.0.0:7946\"]"),
    );
    // Update: other static seeds, one member.
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: BootstrapPeers\nmetadata: {{name: seeds, namespace: {ns}}}\nspec:\n  static: [\"[fd00::1]:7946\"]\n  fromMembers: {{count: 1}}\n"
    ));
    wait_field(
        &ns,
        "bootstrappeers",
        "seeds",
        "{.status.peers}",
        "[\"[fd00::1]:7946\",\"10.9.0.2:7946\"]",
    );
    wait_field(
        &ns,
        "bootstrappeers",
        "seeds",
        "{.status.observedGeneration}",
        "2",
    );
    // Delete: the snapshot has no seeds left.
    assert!(kubectl(&["delete", "bootstrappeers", "seeds", "-n", &ns]).success());
    eventually("no peers in the snapshot", || {
        let s = snapshot_json(&ns, "default");
        if s["peers"] == serde_json::json!([]) {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
}

/// The operator did all of the above with only its ServiceAccount's RBAC;
/// here, what lies outside it is refused.
#[test]
fn the_operator_account_can_do_its_job_and_nothing_more() {
    operator();
    let kc = cp()
        .token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT)
        .expect("a token kubeconfig");
    let can = |args: &[&str]| {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        cp().kubectl_as(&kc, &a)
            .expect("kubectl runs")
            .stdout
            .trim()
            .to_string()
    };
    for allowed in [
        &["watch", "gossipnetworks.gossamer.dev", "-A"][..],
        &["patch", "gossipkeys.gossamer.dev/status", "-n", "default"],
        &["create", "gossipkeys.gossamer.dev", "-n", "default"],
        &["delete", "gossipkeys.gossamer.dev", "-n", "default"],
        &["list", "pods", "-A"],
        &["create", "secrets", "-n", "default"],
        &["update", "configmaps", "-n", "default"],
        &["create", "events.events.k8s.io", "-n", "default"],
        &[
            "patch",
            "leases.coordination.k8s.io",
            "-n",
            OPERATOR_NAMESPACE,
        ],
    ] {
        assert_eq!(can(allowed), "yes", "the operator needs {allowed:?}");
    }
    for forbidden in [
        &["delete", "secrets", "-n", "default"][..],
        &["list", "secrets", "-A"],
        &["create", "pods", "-n", "default"],
        &["update", "gossipnetworks.gossamer.dev", "-n", "default"],
        &["delete", "gossipnetworks.gossamer.dev", "-n", "default"],
        &["patch", "leases.coordination.k8s.io", "-n", "default"],
        &["get", "nodes"],
        &["create", "clusterrolebindings"],
    ] {
        assert_eq!(
            can(forbidden),
            "no",
            "the operator must not be allowed {forbidden:?}"
        );
    }
    // And a real attempt is refused by the API server.
    let out = cp()
        .kubectl_as(&kc, &["delete", "secret", "anything", "-n", "default"])
        .expect("kubectl runs");
    assert!(out.stderr.contains("forbidden"), "{out:?}");
    // The operator itself never hit a refusal.
    assert!(
        !operator().log().contains("forbidden"),
        "the operator's RBAC is short of a verb:\n{}",
        operator().log()
    );
}

#[test]
fn health_readiness_and_metrics_are_served() {
    let op = operator();
    assert_eq!(op.get("/healthz").expect("healthz").0, 200);
    assert_eq!(op.get("/readyz").expect("readyz").0, 200);
    let (code, body) = op.get("/metrics").expect("metrics");
    assert_eq!(code, 200);
    for name in [
        "gossamer_operator_reconciles_total",
        "gossamer_operator_reconcile_duration_seconds",
        "gossamer_operator_snapshot_queue_depth",
        "gossamer_operator_leader 1",
        "gossamer_operator_index_members",
    ] {
        assert!(body.contains(name), "/metrics lacks {name}:\n{body}");
    }
    assert_eq!(op.get("/nope").expect("404").0, 404);
}
