//! The memberlist wire cases shared by the core's golden test
//! (`sidecar/core/tests/wire_golden.rs`, Go's committed bytes against
//! Rust) and the e2e tier (`tests/e2e/golden_vectors.rs`, Rust's bytes
//! against the Go tool in tests/interop/golden).
//!
//! [`cases`] builds the same named cases, in the same order, as the Go
//! tool's `cases()`; [`render_case`] renders a case's expected value as the
//! tool's `decode` mode prints it.
// Each including test crate uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;

use gossamer_core::wire::{
    add_crc, add_label_header, compress_payload, decode_message, decode_packet, decode_stream,
    encode_compound, encode_stream, split_label_header, split_stream_label, Ack, Alive, Dead,
    ErrResp, IndirectPing, Message, Nack, Ping, PushNodeState, PushPull, StreamMessage, Suspect,
};
use serde_json::{json, Value};

/// The committed output of `golden encode`, relative to the workspace root.
pub const VECTORS: &str = "tests/interop/golden/vectors.json";

/// How to regenerate [`VECTORS`] (from the workspace root).
pub const REGENERATE: &str = "cd tests/interop/golden && go run . encode > vectors.json";

/// One vector as the Go tool writes and reads it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Vector {
    pub name: String,
    pub kind: String,
    pub hex: String,
}

/// Parses the tool's `encode` output (or the committed file) into
/// name -> vector.
///
/// # Panics
/// If `json` is not a list of vectors or names a case twice.
pub fn parse(json: &[u8]) -> BTreeMap<String, Vector> {
    let list: Vec<Vector> =
        serde_json::from_slice(json).expect("wire vectors are [{name, kind, hex}]");
    let n = list.len();
    let map: BTreeMap<String, Vector> = list.into_iter().map(|v| (v.name.clone(), v)).collect();
    assert_eq!(map.len(), n, "wire vectors name a case twice");
    map
}

/// Rust's bytes for every case, as vectors the tool's `decode` reads.
pub fn rust_vectors() -> Vec<Vector> {
    cases()
        .iter()
        .map(|(name, case)| Vector {
            name: name.to_string(),
            kind: case.kind().into(),
            hex: hex::encode(case.bytes()),
        })
        .collect()
}

// ------------------------------------------------------- data (as in Go)

pub fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(31) + seed * 7 + (i >> 5)) as u8)
        .collect()
}

pub fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

pub fn text(n: usize) -> Vec<u8> {
    let words = "gossip swim probe ack suspect alive dead push pull label crc ";
    words.repeat(n / words.len() + 1).as_bytes()[..n].to_vec()
}

pub fn name(prefix: &str, n: usize) -> String {
    prefix.repeat(n / prefix.len() + 1)[..n].to_string()
}

pub const IPV4: [u8; 4] = [10, 0, 0, 1];
pub const IPV4B: [u8; 4] = [10, 1, 2, 3];
pub const IPV6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const IPV4_MAPPED: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 10];

pub fn push_nodes_3() -> Vec<PushNodeState> {
    vec![
        PushNodeState {
            name: "node-a".into(),
            addr: IPV4.to_vec(),
            port: 7946,
            meta: pattern(10, 1),
            incarnation: 1,
            state: 0,
            vsn: vec![1, 5, 2, 0, 0, 0],
        },
        PushNodeState {
            name: "node-b".into(),
            addr: IPV6.to_vec(),
            port: 7947,
            meta: vec![],
            incarnation: 300,
            state: 1,
            vsn: vec![1, 5, 5, 2, 5, 4],
        },
        PushNodeState {
            name: name("node-c-long-name-", 40),
            addr: IPV4_MAPPED.to_vec(),
            port: 65535,
            meta: pattern(512, 2),
            incarnation: 70000,
            state: 3,
            vsn: vec![],
        },
    ]
}

pub fn push_nodes_n(n: usize) -> Vec<PushNodeState> {
    (0..n)
        .map(|i| PushNodeState {
            name: format!("node-{i:03}"),
            addr: vec![10, 0, (i >> 8) as u8, i as u8],
            port: 7946,
            meta: if i % 40 == 0 {
                vec![]
            } else {
                pattern(i % 40, i)
            },
            incarnation: (i * 1000) as u32,
            state: (i % 4) as u8,
            vsn: vec![1, 5, 5, 2, 5, 4],
        })
        .collect()
}

// ------------------------------------------------------------------ cases

pub enum Case {
    /// One message: its bytes are `Message::encode`.
    Msg(Message),
    /// A packet: expected label and messages, and Rust's bytes.
    Packet {
        label: String,
        messages: Vec<Message>,
        bytes: Vec<u8>,
    },
    /// A stream: expected label and message, and Rust's bytes.
    Stream {
        label: String,
        msg: StreamMessage,
        bytes: Vec<u8>,
    },
}

impl Case {
    pub fn kind(&self) -> &'static str {
        match self {
            Case::Msg(_) => "msg",
            Case::Packet { .. } => "packet",
            Case::Stream { .. } => "stream",
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Case::Msg(m) => m.to_bytes(),
            Case::Packet { bytes, .. } | Case::Stream { bytes, .. } => bytes.clone(),
        }
    }
}

pub fn packet(messages: Vec<Message>, bytes: Vec<u8>) -> Case {
    Case::Packet {
        label: String::new(),
        messages,
        bytes,
    }
}

pub fn stream(msg: StreamMessage, compress: bool) -> Case {
    Case::Stream {
        label: String::new(),
        bytes: encode_stream(&msg, compress),
        msg,
    }
}

/// Names whose Go bytes Rust deliberately does not reproduce.
pub const DECODE_ONLY: &[(&str, &str)] = &[(
    "alive_empty_meta",
    "Go writes an empty non-nil []byte as 0xa0; Gossamer always writes empty as nil (0xc0)",
)];

pub fn cases() -> Vec<(&'static str, Case)> {
    let ping_min = Message::Ping(Ping {
        seq_no: 1,
        node: "node-a".into(),
        ..Default::default()
    });
    let ping_v4 = Message::Ping(Ping {
        seq_no: 0xdeadbeef,
        node: "node-b".into(),
        source_addr: IPV4.to_vec(),
        source_port: 7946,
        source_node: "node-a".into(),
    });
    let alive_full = Message::Alive(Alive {
        incarnation: 42,
        node: "node-a".into(),
        addr: IPV4.to_vec(),
        port: 7946,
        meta: pattern(512, 3),
        vsn: vec![1, 5, 2, 0, 0, 0],
    });
    let susp = Message::Suspect(Suspect {
        incarnation: 3,
        node: "node-c".into(),
        from: "node-a".into(),
    });
    let dd = Message::Dead(Dead {
        incarnation: 7,
        node: "node-c".into(),
        from: "node-c".into(),
    });
    let ack = Message::Ack(Ack {
        seq_no: 9,
        payload: vec![],
    });
    let nack = Message::Nack(Nack { seq_no: 255 });
    let user_pb = Message::User(b"piggyback".to_vec());
    let long_label = name("label/", 255);
    let pp3 = |join| {
        StreamMessage::PushPull(PushPull {
            join,
            nodes: push_nodes_3(),
            user_state: pattern(100, 8),
        })
    };
    let b = |m: &Message| m.to_bytes();

    vec![
        ("ping_min", Case::Msg(ping_min.clone())),
        ("ping_full_v4", Case::Msg(ping_v4.clone())),
        (
            "ping_full_v6",
            Case::Msg(Message::Ping(Ping {
                seq_no: 70000,
                node: "node-b".into(),
                source_addr: IPV6.to_vec(),
                source_port: 65535,
                source_node: name("source-", 40),
            })),
        ),
        (
            "ping_v4_mapped",
            Case::Msg(Message::Ping(Ping {
                seq_no: 128,
                node: "n".into(),
                source_addr: IPV4_MAPPED.to_vec(),
                source_port: 128,
                source_node: "m".into(),
            })),
        ),
        ("ping_zero", Case::Msg(Message::Ping(Ping::default()))),
        (
            "indirect_ping_min",
            Case::Msg(Message::IndirectPing(IndirectPing {
                seq_no: 5,
                target: IPV4.to_vec(),
                port: 7946,
                node: "target".into(),
                ..Default::default()
            })),
        ),
        (
            "indirect_ping_full",
            Case::Msg(Message::IndirectPing(IndirectPing {
                seq_no: 300,
                target: IPV6.to_vec(),
                port: 80,
                node: name("target-", 33),
                nack: true,
                source_addr: IPV4B.to_vec(),
                source_port: 7946,
                source_node: "src".into(),
            })),
        ),
        ("ack_nil", Case::Msg(ack.clone())),
        (
            "ack_payload",
            Case::Msg(Message::Ack(Ack {
                seq_no: 65536,
                payload: pattern(300, 4),
            })),
        ),
        (
            "ack_payload_short",
            Case::Msg(Message::Ack(Ack {
                seq_no: 65535,
                payload: pattern(20, 5),
            })),
        ),
        ("nack", Case::Msg(nack.clone())),
        (
            "err",
            Case::Msg(Message::Err(ErrResp {
                error: "remote: something went wrong".into(),
            })),
        ),
        ("err_empty", Case::Msg(Message::Err(ErrResp::default()))),
        ("suspect", Case::Msg(susp.clone())),
        (
            "suspect_long",
            Case::Msg(Message::Suspect(Suspect {
                incarnation: u32::MAX,
                node: name("very-long-node-name-", 300),
                from: name("from-", 40),
            })),
        ),
        ("alive_full", Case::Msg(alive_full.clone())),
        (
            "alive_nil",
            Case::Msg(Message::Alive(Alive {
                incarnation: 1,
                node: "node-b".into(),
                addr: IPV6.to_vec(),
                ..Default::default()
            })),
        ),
        (
            "alive_meta_31",
            Case::Msg(Message::Alive(Alive {
                incarnation: 255,
                node: "node-c".into(),
                addr: IPV4_MAPPED.to_vec(),
                port: 127,
                meta: pattern(31, 6),
                vsn: vec![1, 5, 5, 2, 5, 4],
            })),
        ),
        (
            "alive_meta_32",
            Case::Msg(Message::Alive(Alive {
                incarnation: 65535,
                node: name("n", 31),
                addr: IPV4.to_vec(),
                port: 256,
                meta: pattern(32, 7),
                vsn: vec![1, 5, 5, 0, 0, 0],
            })),
        ),
        (
            "alive_empty_meta",
            Case::Msg(Message::Alive(Alive {
                incarnation: 2,
                node: "node-e".into(),
                addr: IPV4.to_vec(),
                port: 7946,
                meta: vec![],
                vsn: vec![],
            })),
        ),
        ("dead", Case::Msg(dd.clone())),
        ("dead_empty", Case::Msg(Message::Dead(Dead::default()))),
        ("user", Case::Msg(Message::User(b"hello user".to_vec()))),
        ("user_empty", Case::Msg(Message::User(vec![]))),
        // ------------------------------------------------------ packets
        (
            "compound_3",
            packet(
                vec![ping_v4.clone(), alive_full.clone(), susp.clone()],
                encode_compound(&[b(&ping_v4), b(&alive_full), b(&susp)]),
            ),
        ),
        (
            "compound_1",
            packet(vec![nack.clone()], encode_compound(&[b(&nack)])),
        ),
        ("compound_0", packet(vec![], encode_compound(&[]))),
        (
            "compressed_ping",
            packet(vec![ping_v4.clone()], compress_payload(&b(&ping_v4))),
        ),
        (
            "compressed_compound",
            packet(
                vec![ping_min.clone(), dd.clone(), user_pb.clone()],
                compress_payload(&encode_compound(&[b(&ping_min), b(&dd), b(&user_pb)])),
            ),
        ),
        (
            "compound_with_compressed",
            packet(
                vec![alive_full.clone(), susp.clone()],
                encode_compound(&[compress_payload(&b(&alive_full)), b(&susp)]),
            ),
        ),
        (
            "crc_ping",
            packet(vec![ping_min.clone()], add_crc(&b(&ping_min))),
        ),
        (
            "crc_compound",
            packet(
                vec![ack.clone(), nack.clone()],
                add_crc(&encode_compound(&[b(&ack), b(&nack)])),
            ),
        ),
        (
            "crc_compressed",
            packet(
                vec![alive_full.clone()],
                add_crc(&compress_payload(&b(&alive_full))),
            ),
        ),
        (
            "label_ping",
            Case::Packet {
                label: "shop/default".into(),
                messages: vec![ping_min.clone()],
                bytes: add_label_header("shop/default", &b(&ping_min)),
            },
        ),
        (
            "label_crc_compound",
            Case::Packet {
                label: long_label.clone(),
                messages: vec![susp.clone(), dd.clone()],
                bytes: add_label_header(
                    &long_label,
                    &add_crc(&encode_compound(&[b(&susp), b(&dd)])),
                ),
            },
        ),
        (
            "compressed_text_user",
            packet(
                vec![Message::User(text(5000))],
                compress_payload(&b(&Message::User(text(5000)))),
            ),
        ),
        (
            "compressed_noise_user",
            packet(
                vec![Message::User(noise(20000, 7))],
                compress_payload(&b(&Message::User(noise(20000, 7)))),
            ),
        ),
        // ------------------------------------------------------ streams
        (
            "stream_ping",
            stream(
                StreamMessage::Ping(Ping {
                    seq_no: 0xdeadbeef,
                    node: "node-b".into(),
                    source_addr: IPV4.to_vec(),
                    source_port: 7946,
                    source_node: "node-a".into(),
                }),
                false,
            ),
        ),
        (
            "stream_ack",
            stream(
                StreamMessage::Ack(Ack {
                    seq_no: 9,
                    payload: vec![],
                }),
                false,
            ),
        ),
        (
            "stream_err",
            stream(
                StreamMessage::Err(ErrResp {
                    error: "remote state is encrypted and encryption is not configured".into(),
                }),
                false,
            ),
        ),
        ("stream_pushpull_3", stream(pp3(false), false)),
        (
            "stream_pushpull_join_empty",
            stream(
                StreamMessage::PushPull(PushPull {
                    join: true,
                    ..Default::default()
                }),
                false,
            ),
        ),
        ("stream_pushpull_compressed", stream(pp3(true), true)),
        (
            "stream_pushpull_130",
            stream(
                StreamMessage::PushPull(PushPull {
                    join: false,
                    nodes: push_nodes_n(130),
                    user_state: pattern(40000, 9),
                }),
                false,
            ),
        ),
        (
            "stream_user",
            stream(StreamMessage::User(pattern(50, 10)), false),
        ),
        (
            "stream_user_compressed",
            stream(StreamMessage::User(pattern(50, 10)), true),
        ),
        (
            "stream_user_200",
            stream(StreamMessage::User(pattern(200, 11)), false),
        ),
        (
            "stream_label_pushpull",
            Case::Stream {
                label: "shop/default".into(),
                bytes: add_label_header("shop/default", &encode_stream(&pp3(false), false)),
                msg: pp3(false),
            },
        ),
    ]
}

// ---------------------------------------------- rendering (as Go renders)

pub fn render_message(m: &Message) -> Value {
    let body = match m {
        Message::Ping(p) => render_ping(p),
        Message::IndirectPing(p) => json!({
            "SeqNo": p.seq_no, "Target": hex::encode(&p.target), "Port": p.port,
            "Node": p.node, "Nack": p.nack, "SourceAddr": hex::encode(&p.source_addr),
            "SourcePort": p.source_port, "SourceNode": p.source_node,
        }),
        Message::Ack(a) => render_ack(a),
        Message::Nack(n) => json!({ "SeqNo": n.seq_no }),
        Message::Err(e) => json!({ "Error": e.error }),
        Message::Suspect(s) => {
            json!({ "Incarnation": s.incarnation, "Node": s.node, "From": s.from })
        }
        Message::Dead(d) => json!({ "Incarnation": d.incarnation, "Node": d.node, "From": d.from }),
        Message::Alive(a) => json!({
            "Incarnation": a.incarnation, "Node": a.node, "Addr": hex::encode(&a.addr),
            "Port": a.port, "Meta": hex::encode(&a.meta), "Vsn": hex::encode(&a.vsn),
        }),
        Message::User(d) => json!({ "Data": hex::encode(d) }),
    };
    json!({ "type": m.message_type() as u8, "body": body })
}

pub fn render_ping(p: &Ping) -> Value {
    json!({
        "SeqNo": p.seq_no, "Node": p.node, "SourceAddr": hex::encode(&p.source_addr),
        "SourcePort": p.source_port, "SourceNode": p.source_node,
    })
}

pub fn render_ack(a: &Ack) -> Value {
    json!({ "SeqNo": a.seq_no, "Payload": hex::encode(&a.payload) })
}

pub fn render_stream(label: &str, m: &StreamMessage) -> Value {
    let (ty, body) = match m {
        StreamMessage::Ping(p) => (0, render_ping(p)),
        StreamMessage::Ack(a) => (2, render_ack(a)),
        StreamMessage::Err(e) => (13, json!({ "Error": e.error })),
        StreamMessage::User(d) => (8, json!({ "Data": hex::encode(d) })),
        StreamMessage::PushPull(pp) => (
            6,
            json!({
                "Join": pp.join,
                "UserState": hex::encode(&pp.user_state),
                "Nodes": pp.nodes.iter().map(|n| json!({
                    "Name": n.name, "Addr": hex::encode(&n.addr), "Port": n.port,
                    "Meta": hex::encode(&n.meta), "Incarnation": n.incarnation,
                    "State": n.state, "Vsn": hex::encode(&n.vsn),
                })).collect::<Vec<_>>(),
            }),
        ),
    };
    json!({ "label": label, "type": ty, "body": body })
}

pub fn render_case(c: &Case) -> Value {
    match c {
        Case::Msg(m) => render_message(m),
        Case::Packet {
            label, messages, ..
        } => json!({
            "label": label,
            "messages": messages.iter().map(render_message).collect::<Vec<_>>(),
        }),
        Case::Stream { label, msg, .. } => render_stream(label, msg),
    }
}

// ------------------------------------------------------------------ checks

/// Decodes `bytes` in Rust as `case` says and checks the result.
pub fn check_rust_decode(name: &str, case: &Case, bytes: &[u8]) {
    match case {
        Case::Msg(want) => {
            let got = decode_message(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&got, want, "{name}: Rust decode of Go bytes");
        }
        Case::Packet {
            label, messages, ..
        } => {
            let (got_label, rest) =
                split_label_header(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got_label, label, "{name}: label");
            let got: Vec<Message> = decode_packet(rest)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .into_iter()
                .map(|r| r.unwrap_or_else(|e| panic!("{name}: part: {e}")))
                .collect();
            assert_eq!(&got, messages, "{name}: Rust decode of Go bytes");
        }
        Case::Stream { label, msg, .. } => {
            let (got_label, used) = split_stream_label(bytes)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|| panic!("{name}: label incomplete"));
            assert_eq!(&got_label, label, "{name}: label");
            let (got, n) = decode_stream(&bytes[used..])
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|| panic!("{name}: stream reported incomplete"));
            assert_eq!(&got, msg, "{name}: Rust decode of Go bytes");
            assert_eq!(used + n, bytes.len(), "{name}: consumed length");
            // Every strict prefix asks for more bytes.
            for cut in [0, 1, (bytes.len() - used) / 2, bytes.len() - used - 1] {
                assert_eq!(
                    decode_stream(&bytes[used..used + cut]).unwrap(),
                    None,
                    "{name}: prefix of {cut} bytes"
                );
            }
        }
    }
}
