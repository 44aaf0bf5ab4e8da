//! NetworkDB's message envelope, as libnetwork's `message.go` builds it.
//!
//! Every message is a [`GossipMessage`] whose `type` says how to read
//! `data`; a compound is a `GossipMessage{COMPOUND, CompoundMessage{[...]}}`
//! whose parts are themselves wrapped messages. prost and gogo/protobuf both
//! write fields in field-number order and leave out proto3 defaults, so the
//! bytes are the Go package's (golden test: `sidecar/core/tests/tables_golden.rs`).

use prost::Message;

use super::proto::{
    compound_message::SimpleMessage, BulkSyncMessage, CompoundMessage, GossipMessage, MessageType,
    NetworkEvent, NetworkPushPull, NodeEvent, TableEvent,
};

/// Bytes a compound message adds before its parts: the `GossipMessage`
/// header (type field, data tag, length varint up to 3 bytes).
pub const COMPOUND_HEADER_OVERHEAD: usize = 6;

/// Bytes each part adds inside a compound: two tags and two length varints.
/// libnetwork counts 4, which undercounts parts of 126 bytes or more; this
/// counts 6, exact up to 16 KiB parts, so a compound never exceeds its
/// budget.
pub const COMPOUND_PART_OVERHEAD: usize = 6;

/// A NetworkDB message, decoded one level: the envelope's payload parsed by
/// its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A node joined or left the cluster.
    Node(NodeEvent),
    /// A node joined or left a network.
    Network(NetworkEvent),
    /// A table entry was created, updated or deleted; `raw` is the event's
    /// own encoding, relayed unchanged.
    Table {
        /// The event.
        event: TableEvent,
        /// Its bytes, as received (relays re-wrap them, as libnetwork does).
        raw: Vec<u8>,
    },
    /// Push/pull state (the memberlist delegate's local state).
    PushPull(NetworkPushPull),
    /// A bulk sync.
    BulkSync(BulkSyncMessage),
    /// A compound: each part is a whole wrapped message.
    Compound(Vec<Vec<u8>>),
    /// A type this version does not know (skipped, as libnetwork does).
    Unknown(i32),
}

/// Why bytes are not a NetworkDB message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed NetworkDB {what}: {reason}")]
pub struct DecodeError {
    /// Which message failed.
    pub what: &'static str,
    /// prost's reason.
    pub reason: String,
}

fn err(what: &'static str) -> impl FnOnce(prost::DecodeError) -> DecodeError {
    move |e| DecodeError {
        what,
        reason: e.to_string(),
    }
}

/// Wraps already-encoded `raw` bytes as a message of type `t`
/// (libnetwork's `encodeRawMessage`).
pub fn encode_raw(t: MessageType, raw: Vec<u8>) -> Vec<u8> {
    GossipMessage {
        r#type: t as i32,
        data: raw,
    }
    .encode_to_vec()
}

/// Encodes `msg` and wraps it as type `t` (libnetwork's `encodeMessage`).
pub fn encode<M: Message>(t: MessageType, msg: &M) -> Vec<u8> {
    encode_raw(t, msg.encode_to_vec())
}

/// Encodes a node event.
pub fn encode_node_event(e: &NodeEvent) -> Vec<u8> {
    encode(MessageType::NodeEvent, e)
}

/// Encodes a network event.
pub fn encode_network_event(e: &NetworkEvent) -> Vec<u8> {
    encode(MessageType::NetworkEvent, e)
}

/// Encodes a table event.
pub fn encode_table_event(e: &TableEvent) -> Vec<u8> {
    encode(MessageType::TableEvent, e)
}

/// Encodes push/pull state.
pub fn encode_push_pull(p: &NetworkPushPull) -> Vec<u8> {
    encode(MessageType::PushPull, p)
}

/// Encodes a bulk sync.
pub fn encode_bulk_sync(b: &BulkSyncMessage) -> Vec<u8> {
    encode(MessageType::BulkSync, b)
}

/// Packs wrapped messages into one compound (libnetwork's
/// `makeCompoundMessage`).
pub fn encode_compound(parts: &[Vec<u8>]) -> Vec<u8> {
    let c = CompoundMessage {
        messages: parts
            .iter()
            .map(|p| SimpleMessage { payload: p.clone() })
            .collect(),
    };
    encode(MessageType::Compound, &c)
}

/// The exact size of [`encode_compound`]'s output for parts of these sizes.
pub fn compound_len(part_lens: impl IntoIterator<Item = usize>) -> usize {
    let body: usize = part_lens
        .into_iter()
        .map(|n| {
            // An empty payload is a default, left out.
            let simple = if n == 0 {
                0
            } else {
                1 + prost::length_delimiter_len(n) + n
            };
            1 + prost::length_delimiter_len(simple) + simple
        })
        .sum();
    // type = COMPOUND (2 bytes), then the data field.
    2 + if body == 0 {
        0
    } else {
        1 + prost::length_delimiter_len(body) + body
    }
}

/// Decodes one wrapped message and its payload.
///
/// # Errors
/// The envelope or its payload is not valid protobuf for its type.
pub fn decode(buf: &[u8]) -> Result<Decoded, DecodeError> {
    let g = GossipMessage::decode(buf).map_err(err("GossipMessage"))?;
    let data = g.data.as_slice();
    Ok(match MessageType::try_from(g.r#type) {
        Ok(MessageType::NodeEvent) => {
            Decoded::Node(NodeEvent::decode(data).map_err(err("NodeEvent"))?)
        }
        Ok(MessageType::NetworkEvent) => {
            Decoded::Network(NetworkEvent::decode(data).map_err(err("NetworkEvent"))?)
        }
        Ok(MessageType::TableEvent) => Decoded::Table {
            event: TableEvent::decode(data).map_err(err("TableEvent"))?,
            raw: g.data,
        },
        Ok(MessageType::PushPull) => {
            Decoded::PushPull(NetworkPushPull::decode(data).map_err(err("NetworkPushPull"))?)
        }
        Ok(MessageType::BulkSync) => {
            Decoded::BulkSync(BulkSyncMessage::decode(data).map_err(err("BulkSyncMessage"))?)
        }
        Ok(MessageType::Compound) => Decoded::Compound(
            CompoundMessage::decode(data)
                .map_err(err("CompoundMessage"))?
                .messages
                .into_iter()
                .map(|m| m.payload)
                .collect(),
        ),
        Ok(MessageType::Invalid) | Err(_) => Decoded::Unknown(g.r#type),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_len_is_exact() {
        for sizes in [
            vec![],
            vec![0],
            vec![1, 2, 3],
            vec![125, 126, 127, 128],
            vec![300, 1000],
            vec![16_000],
        ] {
            let parts: Vec<Vec<u8>> = sizes.iter().map(|n| vec![7u8; *n]).collect();
            assert_eq!(encode_compound(&parts).len(), compound_len(sizes.clone()));
        }
    }

    #[test]
    fn compound_roundtrips_and_unknown_types_are_skipped() {
        let a = encode_node_event(&NodeEvent {
            r#type: 1,
            l_time: 3,
            node_name: "n1".into(),
        });
        let c = encode_compound(&[a.clone(), encode_raw(MessageType::Invalid, vec![1])]);
        let Decoded::Compound(parts) = decode(&c).unwrap() else {
            panic!("not a compound")
        };
        assert_eq!(parts[0], a);
        assert_eq!(decode(&parts[1]).unwrap(), Decoded::Unknown(0));
        assert!(decode(&[0xff, 0xff]).is_err());
    }
}
