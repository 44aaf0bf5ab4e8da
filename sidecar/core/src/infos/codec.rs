//! How infos travel: inside NetworkDB's own envelope, in a field libnetwork
//! does not know.
//!
//! Every NetworkDB message is a `GossipMessage{type = 1, data = 2}`. Infos
//! ride in field [`INFOS_FIELD`] of that envelope, which gogo/protobuf's
//! generated `Unmarshal` (libnetwork's `networkdb.pb.go`) skips like any
//! unknown field:
//!
//! - **User messages** (broadcasts piggybacked on memberlist's gossip) are
//!   `GossipMessage{type = COMPOUND, data = empty, infos}`. Go NetworkDB's
//!   `handleMessage` reads a compound with no parts and does nothing, and
//!   logs nothing. (A new `type` value would not do: its `default:` arm
//!   logs "unknown message type" at error level for every message.)
//! - **Push/pull state** is NetworkDB's own `GossipMessage{PUSH_PULL, ...}`
//!   with the infos field appended, so Go NetworkDB's `MergeRemoteState`
//!   decodes its network state as before.
//!
//! A Go memberlist peer without NetworkDB treats both as opaque user
//! messages and state, as it treats NetworkDB's.

use prost::Message;

use super::types::Info;
use crate::tables::proto::MessageType;

/// The `GossipMessage` field number that carries [`InfosMessage`]. Far above
/// libnetwork's (1 and 2) so a future NetworkDB field will not collide.
pub const INFOS_FIELD: u32 = 1000;

/// One info as it travels.
#[derive(Clone, PartialEq, Message)]
pub struct InfoProto {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// The node that wrote it.
    #[prost(string, tag = "3")]
    pub origin: String,
    /// When it was written: Unix milliseconds on the origin's wall clock.
    #[prost(uint64, tag = "4")]
    pub origin_ms: u64,
    /// Time to live from `origin_ms`, in milliseconds.
    #[prost(uint64, tag = "5")]
    pub ttl_ms: u64,
    /// Hops from the origin to the sender (0: the sender is the origin).
    #[prost(uint32, tag = "6")]
    pub hops: u32,
}

/// A batch of infos.
#[derive(Clone, PartialEq, Message)]
pub struct InfosMessage {
    /// The infos.
    #[prost(message, repeated, tag = "1")]
    pub infos: Vec<InfoProto>,
}

/// The NetworkDB envelope as infos see it: its type, and the infos field.
/// Decoding skips NetworkDB's `data`.
#[derive(Clone, PartialEq, Message)]
struct Envelope {
    #[prost(int32, tag = "1")]
    r#type: i32,
    #[prost(message, optional, tag = "1000")]
    infos: Option<InfosMessage>,
}

impl From<&Info> for InfoProto {
    fn from(i: &Info) -> Self {
        InfoProto {
            key: i.key.clone(),
            value: i.value.clone(),
            origin: i.origin.clone(),
            origin_ms: i.origin_ms,
            ttl_ms: i.ttl_ms,
            hops: i.hops,
        }
    }
}

impl From<InfoProto> for Info {
    fn from(p: InfoProto) -> Self {
        Info {
            key: p.key,
            value: p.value,
            origin: p.origin,
            origin_ms: p.origin_ms,
            ttl_ms: p.ttl_ms,
            hops: p.hops,
        }
    }
}

/// The infos field alone (tag, length, message), to append to a NetworkDB
/// envelope that is already encoded.
fn field(infos: &[Info]) -> Vec<u8> {
    let msg = InfosMessage {
        infos: infos.iter().map(InfoProto::from).collect(),
    };
    let mut out = Vec::with_capacity(msg.encoded_len() + 8);
    prost::encoding::message::encode(INFOS_FIELD, &msg, &mut out);
    out
}

/// A user message carrying `infos`: an empty NetworkDB compound plus the
/// infos field.
pub fn encode_message(infos: &[Info]) -> Vec<u8> {
    let mut out = crate::tables::codec::encode_raw(MessageType::Compound, Vec::new());
    out.extend(field(infos));
    out
}

/// The exact size of [`encode_message`]'s output for one info.
pub fn message_len(info: &Info) -> usize {
    encode_message(std::slice::from_ref(info)).len()
}

/// NetworkDB push/pull `state` with `infos` appended (protobuf merges
/// concatenated fields, so the envelope stays NetworkDB's).
pub fn append_to_state(mut state: Vec<u8>, infos: &[Info]) -> Vec<u8> {
    if !infos.is_empty() {
        state.extend(field(infos));
    }
    state
}

/// The infos a user message or push/pull state carries: `None` when it
/// carries none (or is not a NetworkDB envelope at all), so it is
/// NetworkDB's (or someone else's) to read.
pub fn decode(buf: &[u8]) -> Option<Vec<Info>> {
    let env = Envelope::decode(buf).ok()?;
    let infos = env.infos?;
    Some(infos.infos.into_iter().map(Info::from).collect())
}

/// Whether a user message is only an infos carrier (NetworkDB has nothing
/// to read in it).
pub fn is_infos_only(buf: &[u8]) -> bool {
    Envelope::decode(buf)
        .is_ok_and(|e| e.infos.is_some() && e.r#type == MessageType::Compound as i32)
        && crate::tables::codec::decode(buf)
            .is_ok_and(|d| matches!(d, crate::tables::codec::Decoded::Compound(p) if p.is_empty()))
}
