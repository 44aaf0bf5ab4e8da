//! Golden wire vectors for NetworkDB messages, shared with the Go tool in
//! tests/interop/networkdb-golden, which marshals them with the real
//! libnetwork `networkdb` package (github.com/moby/moby/v2, pinned) and its
//! gogo/protobuf generated types.
//!
//! The two sides build the same named cases independently; this test checks
//! that (a) Rust's bytes equal Go's, (b) Go's bytes decode in Rust to the
//! expected messages, (c) Rust's bytes decode in Go and re-marshal to the
//! same bytes, and (d) the Go tool's output equals the checked-in
//! `vectors.json`. A missing `go` toolchain or a failed build fails the
//! test: without Go there is no evidence of compatibility.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use gossamer_core::tables::codec::{self, Decoded};
use gossamer_core::tables::proto::{
    network_event, node_event, table_event, BulkSyncMessage, GossipMessage, NetworkEntry,
    NetworkEvent, NetworkPushPull, NodeEvent, TableEvent,
};
use prost::Message;
use serde_json::{json, Value};

fn tool_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/networkdb-golden")
}

/// Builds the Go tool once per test binary.
fn tool() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("networkdb-golden");
        let res = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(tool_dir())
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .output();
        match res {
            Err(e) => panic!(
                "cannot run `go` to build the NetworkDB golden tool in {}: {e}. Install Go \
                 (1.26.3 or later, as github.com/moby/moby/v2 requires) and put it on PATH.",
                tool_dir().display()
            ),
            Ok(o) if !o.status.success() => panic!(
                "`go build` of the NetworkDB golden tool in {} failed ({}):\n{}",
                tool_dir().display(),
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ),
            Ok(_) => out,
        }
    })
}

fn run_tool(mode: &str, input: Option<&Value>) -> Value {
    let mut child = Command::new(tool())
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the NetworkDB golden tool");
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(v) = input {
            stdin.write_all(v.to_string().as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "golden tool `{mode}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("tool output is JSON")
}

// ------------------------------------------------------------ the cases

#[allow(clippy::too_many_arguments)] // one argument per TableEvent field
fn table(
    kind: table_event::Type,
    l_time: u64,
    node: &str,
    net: &str,
    t: &str,
    key: &str,
    value: &[u8],
    reap: i32,
) -> TableEvent {
    TableEvent {
        r#type: kind as i32,
        l_time,
        node_name: node.into(),
        network_id: net.into(),
        table_name: t.into(),
        key: key.into(),
        value: value.to_vec(),
        residual_reap_time: reap,
    }
}

/// The same cases, in the same order, as the Go tool's `cases()`.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    use table_event::Type::{Create, Delete, Update};
    let ev1 = codec::encode_table_event(&table(Create, 1, "n1", "net", "t", "a", b"1", 0));
    let ev2 = codec::encode_table_event(&table(Delete, 2, "n2", "net", "t", "b", b"2", 1799));
    vec![
        (
            "node_event_join",
            codec::encode_node_event(&NodeEvent {
                r#type: node_event::Type::Join as i32,
                l_time: 7,
                node_name: "7f9ca1b2c3d4".into(),
            }),
        ),
        (
            "node_event_leave",
            codec::encode_node_event(&NodeEvent {
                r#type: node_event::Type::Leave as i32,
                l_time: 1 << 40,
                node_name: "node-b".into(),
            }),
        ),
        (
            "network_event_join",
            codec::encode_network_event(&NetworkEvent {
                r#type: network_event::Type::Join as i32,
                l_time: 3,
                node_name: "7f9ca1b2c3d4".into(),
                network_id: "3f2a9c1e7b04".into(),
            }),
        ),
        (
            "network_event_leave",
            codec::encode_network_event(&NetworkEvent {
                r#type: network_event::Type::Leave as i32,
                l_time: 300,
                node_name: "n1".into(),
                network_id: "net".into(),
            }),
        ),
        (
            "table_event_create",
            codec::encode_table_event(&table(
                Create,
                42,
                "7f9ca1b2c3d4",
                "3f2a9c1e7b04",
                "backends",
                "10.1.2.3",
                b"{\"port\":8080}",
                0,
            )),
        ),
        (
            "table_event_update_empty_value",
            codec::encode_table_event(&table(Update, 43, "n1", "net", "t", "k", b"", 0)),
        ),
        (
            "table_event_delete",
            codec::encode_table_event(&table(
                Delete,
                u64::MAX,
                "n1",
                "net",
                "health",
                "ключ/κλειδί",
                &[0, 1, 2, 255],
                1800,
            )),
        ),
        (
            "table_event_negative_reap",
            codec::encode_table_event(&table(Delete, 1, "n1", "net", "t", "k", b"", -1)),
        ),
        (
            "push_pull",
            codec::encode_push_pull(&NetworkPushPull {
                l_time: 99,
                node_name: "7f9ca1b2c3d4".into(),
                networks: vec![
                    NetworkEntry {
                        network_id: "net-a".into(),
                        l_time: 5,
                        node_name: "7f9ca1b2c3d4".into(),
                        leaving: false,
                    },
                    NetworkEntry {
                        network_id: "net-b".into(),
                        l_time: 6,
                        node_name: "peer".into(),
                        leaving: true,
                    },
                ],
            }),
        ),
        (
            "push_pull_empty",
            codec::encode_push_pull(&NetworkPushPull {
                l_time: 1,
                node_name: "n1".into(),
                networks: vec![],
            }),
        ),
        (
            "compound_two",
            codec::encode_compound(&[ev1.clone(), ev2.clone()]),
        ),
        ("compound_empty", codec::encode_compound(&[])),
        (
            "bulk_sync_unsolicited",
            codec::encode_bulk_sync(&BulkSyncMessage {
                l_time: 12,
                unsolicited: true,
                node_name: "n1".into(),
                networks: vec!["net".into(), "net-b".into()],
                payload: codec::encode_compound(&[ev1, ev2]),
            }),
        ),
        (
            "bulk_sync_response_empty",
            codec::encode_bulk_sync(&BulkSyncMessage {
                l_time: 13,
                unsolicited: false,
                node_name: "n2".into(),
                networks: vec!["net".into()],
                payload: codec::encode_compound(&[]),
            }),
        ),
        (
            "unknown_type",
            GossipMessage {
                r#type: 9,
                data: vec![1, 2, 3],
            }
            .encode_to_vec(),
        ),
    ]
}

fn go_vectors() -> &'static Vec<(String, Vec<u8>)> {
    static V: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    V.get_or_init(|| {
        let v = run_tool("encode", None);
        v.as_array()
            .expect("an array")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    hex::decode(c["hex"].as_str().unwrap()).unwrap(),
                )
            })
            .collect()
    })
}

// ------------------------------------------------------------ the tests

#[test]
fn tables_golden_rust_bytes_equal_go_networkdb_bytes() {
    let go = go_vectors();
    let rust = cases();
    let go_names: Vec<&str> = go.iter().map(|(n, _)| n.as_str()).collect();
    let rust_names: Vec<&str> = rust.iter().map(|(n, _)| *n).collect();
    assert_eq!(go_names, rust_names, "the two sides list the same cases");
    for ((name, g), (_, r)) in go.iter().zip(&rust) {
        assert_eq!(hex::encode(r), hex::encode(g), "case {name}");
    }
}

#[test]
fn tables_golden_go_bytes_decode_in_rust() {
    let rust = cases();
    for ((name, g), (_, r)) in go_vectors().iter().zip(&rust) {
        let from_go = codec::decode(g).unwrap_or_else(|e| panic!("case {name}: {e}"));
        let from_rust = codec::decode(r).unwrap();
        assert_eq!(from_go, from_rust, "case {name}");
        // Nested payloads decode too.
        let nested = match &from_go {
            Decoded::Compound(parts) => parts.clone(),
            Decoded::BulkSync(b) => match codec::decode(&b.payload).unwrap() {
                Decoded::Compound(parts) => parts,
                other => panic!("case {name}: bulk sync payload {other:?}"),
            },
            _ => vec![],
        };
        for p in nested {
            assert!(
                matches!(codec::decode(&p), Ok(Decoded::Table { .. })),
                "case {name}"
            );
        }
    }
    let (_, unknown) = &go_vectors()[go_vectors().len() - 1];
    assert_eq!(codec::decode(unknown), Ok(Decoded::Unknown(9)));
}

#[test]
fn tables_golden_rust_bytes_decode_in_go() {
    let input = json!(cases()
        .iter()
        .map(|(n, b)| json!({"name": n, "type": "gossip", "hex": hex::encode(b)}))
        .collect::<Vec<_>>());
    let out = run_tool("decode", Some(&input));
    let out = out.as_array().unwrap();
    assert_eq!(out.len(), cases().len());
    for (o, (name, r)) in out.iter().zip(cases()) {
        assert_eq!(o["name"], name);
        assert_eq!(o["hex"].as_str().unwrap(), hex::encode(r), "case {name}");
    }
}

#[test]
fn tables_golden_checked_in_vectors_match_the_go_package() {
    let file = tool_dir().join("vectors.json");
    let text = std::fs::read_to_string(&file).expect("read vectors.json");
    let checked_in: Value = serde_json::from_str(&text).unwrap();
    let fresh = run_tool("encode", None);
    assert_eq!(
        checked_in,
        fresh,
        "{} is stale: regenerate it with the tool's `encode`",
        file.display()
    );
}

#[test]
fn tables_golden_core_output_decodes_in_go() {
    use gossamer_core::tables::{Config, Output, Tables};
    use std::time::Duration;

    #[allow(clippy::disallowed_methods)] // the virtual-time origin
    let now = std::time::Instant::now();
    let mut n1 = Tables::new(Config::new("7f9ca1b2c3d4"), 1, now).unwrap();
    let mut n2 = Tables::new(Config::new("0a1b2c3d4e5f"), 2, now).unwrap();
    n1.member_joined("0a1b2c3d4e5f", "10.0.0.2:7946".parse().unwrap(), now);
    n2.member_joined("7f9ca1b2c3d4", "10.0.0.1:7946".parse().unwrap(), now);
    n2.join_network("3f2a9c1e7b04", now).unwrap();
    n1.merge_remote_state(&n2.local_state(true), true, now);
    n1.join_network("3f2a9c1e7b04", now).unwrap();
    for (i, k) in ["10.1.2.3", "10.1.2.4", "10.1.2.5"].iter().enumerate() {
        n1.create_entry("3f2a9c1e7b04", "backends", k, vec![i as u8; 30], now)
            .unwrap();
    }
    n1.delete_entry("3f2a9c1e7b04", "backends", "10.1.2.4", now)
        .unwrap();
    n1.handle_timeout(now + Duration::from_secs(60));
    let mut msgs = vec![("local_state".to_string(), n1.local_state(false))];
    msgs.extend(
        n1.get_broadcasts(2, 1400)
            .into_iter()
            .map(|m| ("broadcast".to_string(), m)),
    );
    while let Some(out) = n1.poll_output() {
        if let Output::Send { data, reliable, .. } = out {
            let kind = if reliable { "bulk_sync" } else { "gossip" };
            msgs.push((kind.to_string(), data));
        }
    }
    for kind in ["local_state", "broadcast", "bulk_sync", "gossip"] {
        assert!(msgs.iter().any(|(k, _)| k == kind), "no {kind} output");
    }
    let input = json!(msgs
        .iter()
        .enumerate()
        .map(|(i, (k, b))| json!({"name": format!("{k}-{i}"), "type": "gossip", "hex": hex::encode(b)}))
        .collect::<Vec<_>>());
    let out = run_tool("decode", Some(&input));
    for (o, (_, b)) in out.as_array().unwrap().iter().zip(&msgs) {
        assert_eq!(o["hex"].as_str().unwrap(), hex::encode(b), "{}", o["name"]);
    }
}
