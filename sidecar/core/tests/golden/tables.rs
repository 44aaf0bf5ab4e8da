//! The NetworkDB cases shared by the core's golden test
//! (`sidecar/core/tests/tables_golden.rs`, Go's committed bytes against
//! Rust) and the e2e tier (`tests/e2e/golden_vectors.rs`, Rust's bytes
//! against the Go tool in tests/interop/networkdb-golden).
// Each including test crate uses a different part of this module.
#![allow(dead_code)]

use gossamer_core::tables::codec;
use gossamer_core::tables::proto::{
    network_event, node_event, table_event, BulkSyncMessage, GossipMessage, NetworkEntry,
    NetworkEvent, NetworkPushPull, NodeEvent, TableEvent,
};
use prost::Message;

/// The committed output of `networkdb-golden encode`, relative to the
/// workspace root.
pub const VECTORS: &str = "tests/interop/networkdb-golden/vectors.json";

/// How to regenerate [`VECTORS`] (from the workspace root).
pub const REGENERATE: &str = "cd tests/interop/networkdb-golden && go run . encode > vectors.json";

/// Parses the tool's `encode` output (or the committed file) into
/// (name, bytes) in the tool's order.
///
/// # Panics
/// If `json` is not a list of `{name, type, hex}`.
pub fn parse(json: &[u8]) -> Vec<(String, Vec<u8>)> {
    let v: serde_json::Value = serde_json::from_slice(json).expect("NetworkDB vectors are JSON");
    v.as_array()
        .expect("NetworkDB vectors are a list")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("a name").to_string(),
                hex::decode(c["hex"].as_str().expect("a hex field")).expect("valid hex"),
            )
        })
        .collect()
}

#[allow(clippy::too_many_arguments)] // one argument per TableEvent field
pub fn table(
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
pub fn cases() -> Vec<(&'static str, Vec<u8>)> {
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
