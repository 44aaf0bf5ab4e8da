//! memberlist's message structs and their msgpack bodies.
//!
//! Each `GoStruct` impl writes its fields in byte-wise sorted name order,
//! which is what go-msgpack does for a struct written as a map.

use super::msgpack::{
    write_bool, write_bytes, write_int, write_map_len, write_str, write_uint, GoStruct, Reader,
};
use super::{describe_type, MessageType, WireError};

/// A direct probe (`ping`). `source_*` are omitted from the wire when empty
/// or zero (Go `omitempty`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ping {
    /// Sequence number the ack must echo.
    pub seq_no: u32,
    /// Name of the intended target, so a restarted node under a new name
    /// does not answer; empty means "whoever is there".
    pub node: String,
    /// Address to reply to (4 or 16 bytes); empty means "the sender".
    pub source_addr: Vec<u8>,
    /// Port to reply to; 0 means "the sender's".
    pub source_port: u16,
    /// Name of the sender.
    pub source_node: String,
}

/// A request to probe `target` on the sender's behalf (`indirectPingReq`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndirectPing {
    /// Sequence number the forwarded ack or nack must carry.
    pub seq_no: u32,
    /// Address of the member to probe (4 or 16 bytes).
    pub target: Vec<u8>,
    /// Its port.
    pub port: u16,
    /// Its name.
    pub node: String,
    /// Whether the requester wants a nack if the probe fails (protocol 4+).
    pub nack: bool,
    /// Address to reply to; omitted when empty.
    pub source_addr: Vec<u8>,
    /// Port to reply to; omitted when 0.
    pub source_port: u16,
    /// Name of the requester; omitted when empty.
    pub source_node: String,
}

/// Reply to a ping (`ackResp`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ack {
    /// The ping's sequence number.
    pub seq_no: u32,
    /// Optional ping-delegate payload; empty is written as nil.
    pub payload: Vec<u8>,
}

/// Negative reply to an indirect ping (`nackResp`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nack {
    /// The indirect ping's sequence number.
    pub seq_no: u32,
}

/// Error reply on a stream (`errResp`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrResp {
    /// The remote error text.
    pub error: String,
}

/// `from` suspects `node` (`suspect`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suspect {
    /// The suspected member's incarnation.
    pub incarnation: u32,
    /// The suspected member.
    pub node: String,
    /// The member raising the suspicion.
    pub from: String,
}

/// `node` is alive, or joining (`alive`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alive {
    /// The member's incarnation.
    pub incarnation: u32,
    /// The member's name.
    pub node: String,
    /// Its address (4 or 16 bytes).
    pub addr: Vec<u8>,
    /// Its port.
    pub port: u16,
    /// Delegate metadata, at most [`super::META_MAX_SIZE`] bytes.
    pub meta: Vec<u8>,
    /// Versions: pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: Vec<u8>,
}

/// `node` is dead, or left if `from == node` (`dead`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dead {
    /// The member's incarnation.
    pub incarnation: u32,
    /// The dead member.
    pub node: String,
    /// Who declared it dead (itself when leaving).
    pub from: String,
}

/// One member in a push/pull exchange (`pushNodeState`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushNodeState {
    /// Member name.
    pub name: String,
    /// Address (4 or 16 bytes).
    pub addr: Vec<u8>,
    /// Port.
    pub port: u16,
    /// Delegate metadata.
    pub meta: Vec<u8>,
    /// Incarnation.
    pub incarnation: u32,
    /// 0 alive, 1 suspect, 2 dead, 3 left (a Go `int` on the wire).
    pub state: u8,
    /// Versions: pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: Vec<u8>,
}

/// A full state exchange, as carried on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPull {
    /// True for a join, false for periodic anti-entropy.
    pub join: bool,
    /// Every member the sender knows.
    pub nodes: Vec<PushNodeState>,
    /// Delegate state; empty when there is none.
    pub user_state: Vec<u8>,
}

/// A message carried in a UDP packet, after compound/compress/crc
/// unwrapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Type 0.
    Ping(Ping),
    /// Type 1.
    IndirectPing(IndirectPing),
    /// Type 2.
    Ack(Ack),
    /// Type 11.
    Nack(Nack),
    /// Type 13.
    Err(ErrResp),
    /// Type 3.
    Suspect(Suspect),
    /// Type 4.
    Alive(Alive),
    /// Type 5.
    Dead(Dead),
    /// Type 8: the raw bytes after the type byte.
    User(Vec<u8>),
}

impl Message {
    /// The message's type byte.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Ping(_) => MessageType::Ping,
            Message::IndirectPing(_) => MessageType::IndirectPing,
            Message::Ack(_) => MessageType::Ack,
            Message::Nack(_) => MessageType::Nack,
            Message::Err(_) => MessageType::Err,
            Message::Suspect(_) => MessageType::Suspect,
            Message::Alive(_) => MessageType::Alive,
            Message::Dead(_) => MessageType::Dead,
            Message::User(_) => MessageType::User,
        }
    }

    /// Appends `[type byte][msgpack body]` (for `User`, `[8][raw bytes]`),
    /// exactly as memberlist's `encode` writes it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.message_type() as u8);
        match self {
            Message::Ping(m) => m.encode(out),
            Message::IndirectPing(m) => m.encode(out),
            Message::Ack(m) => m.encode(out),
            Message::Nack(m) => m.encode(out),
            Message::Err(m) => m.encode(out),
            Message::Suspect(m) => m.encode(out),
            Message::Alive(m) => m.encode(out),
            Message::Dead(m) => m.encode(out),
            Message::User(b) => out.extend_from_slice(b),
        }
    }

    /// The message encoded into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Length of [`Message::encode`]'s output (computed by encoding).
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::User(b) => 1 + b.len(),
            _ => self.to_bytes().len(),
        }
    }
}

/// Decodes one message: a type byte and its body. Compound, compress and
/// CRC wrappers are rejected here (use [`super::decode_packet`]). Bytes
/// after the msgpack body are ignored, as memberlist ignores them.
pub fn decode_message(buf: &[u8]) -> Result<Message, WireError> {
    let (&ty, body) = buf.split_first().ok_or(WireError::Empty)?;
    let t = MessageType::from_u8(ty).ok_or(WireError::UnknownType(ty))?;
    let mut r = Reader::new(body);
    Ok(match t {
        MessageType::Ping => Message::Ping(Ping::decode(&mut r)?),
        MessageType::IndirectPing => Message::IndirectPing(IndirectPing::decode(&mut r)?),
        MessageType::Ack => Message::Ack(Ack::decode(&mut r)?),
        MessageType::Nack => Message::Nack(Nack::decode(&mut r)?),
        MessageType::Err => Message::Err(ErrResp::decode(&mut r)?),
        MessageType::Suspect => Message::Suspect(Suspect::decode(&mut r)?),
        MessageType::Alive => Message::Alive(Alive::decode(&mut r)?),
        MessageType::Dead => Message::Dead(Dead::decode(&mut r)?),
        MessageType::User => Message::User(body.to_vec()),
        MessageType::PushPull
        | MessageType::Compound
        | MessageType::Compress
        | MessageType::Encrypt
        | MessageType::HasCrc
        | MessageType::HasLabel => {
            return Err(WireError::UnexpectedType {
                ty: describe_type(ty),
                context: "as a single packet message",
            })
        }
    })
}

// ------------------------------------------------------------ struct codecs

impl GoStruct for Ping {
    const NAME: &'static str = "ping";
    const FIELDS: &'static [&'static str] =
        &["SeqNo", "Node", "SourceAddr", "SourcePort", "SourceNode"];

    fn encode(&self, out: &mut Vec<u8>) {
        let n = 2
            + usize::from(!self.source_addr.is_empty())
            + usize::from(!self.source_node.is_empty())
            + usize::from(self.source_port != 0);
        write_map_len(out, n);
        write_str(out, "Node");
        write_str(out, &self.node);
        write_str(out, "SeqNo");
        write_uint(out, self.seq_no.into());
        if !self.source_addr.is_empty() {
            write_str(out, "SourceAddr");
            write_bytes(out, &self.source_addr);
        }
        if !self.source_node.is_empty() {
            write_str(out, "SourceNode");
            write_str(out, &self.source_node);
        }
        if self.source_port != 0 {
            write_str(out, "SourcePort");
            write_uint(out, self.source_port.into());
        }
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"SeqNo" => self.seq_no = r.u32("ping.SeqNo")?,
            b"Node" => self.node = r.string("ping.Node")?,
            b"SourceAddr" => self.source_addr = r.byte_vec("ping.SourceAddr")?,
            b"SourcePort" => self.source_port = r.u16("ping.SourcePort")?,
            b"SourceNode" => self.source_node = r.string("ping.SourceNode")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl GoStruct for IndirectPing {
    const NAME: &'static str = "indirectPingReq";
    const FIELDS: &'static [&'static str] = &[
        "SeqNo",
        "Target",
        "Port",
        "Node",
        "Nack",
        "SourceAddr",
        "SourcePort",
        "SourceNode",
    ];

    fn encode(&self, out: &mut Vec<u8>) {
        let n = 5
            + usize::from(!self.source_addr.is_empty())
            + usize::from(!self.source_node.is_empty())
            + usize::from(self.source_port != 0);
        write_map_len(out, n);
        write_str(out, "Nack");
        write_bool(out, self.nack);
        write_str(out, "Node");
        write_str(out, &self.node);
        write_str(out, "Port");
        write_uint(out, self.port.into());
        write_str(out, "SeqNo");
        write_uint(out, self.seq_no.into());
        if !self.source_addr.is_empty() {
            write_str(out, "SourceAddr");
            write_bytes(out, &self.source_addr);
        }
        if !self.source_node.is_empty() {
            write_str(out, "SourceNode");
            write_str(out, &self.source_node);
        }
        if self.source_port != 0 {
            write_str(out, "SourcePort");
            write_uint(out, self.source_port.into());
        }
        write_str(out, "Target");
        write_bytes(out, &self.target);
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"SeqNo" => self.seq_no = r.u32("indirectPingReq.SeqNo")?,
            b"Target" => self.target = r.byte_vec("indirectPingReq.Target")?,
            b"Port" => self.port = r.u16("indirectPingReq.Port")?,
            b"Node" => self.node = r.string("indirectPingReq.Node")?,
            b"Nack" => self.nack = r.bool("indirectPingReq.Nack")?,
            b"SourceAddr" => self.source_addr = r.byte_vec("indirectPingReq.SourceAddr")?,
            b"SourcePort" => self.source_port = r.u16("indirectPingReq.SourcePort")?,
            b"SourceNode" => self.source_node = r.string("indirectPingReq.SourceNode")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl GoStruct for Ack {
    const NAME: &'static str = "ackResp";
    const FIELDS: &'static [&'static str] = &["SeqNo", "Payload"];

    fn encode(&self, out: &mut Vec<u8>) {
        write_map_len(out, 2);
        write_str(out, "Payload");
        write_bytes(out, &self.payload);
        write_str(out, "SeqNo");
        write_uint(out, self.seq_no.into());
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"SeqNo" => self.seq_no = r.u32("ackResp.SeqNo")?,
            b"Payload" => self.payload = r.byte_vec("ackResp.Payload")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl GoStruct for Nack {
    const NAME: &'static str = "nackResp";
    const FIELDS: &'static [&'static str] = &["SeqNo"];

    fn encode(&self, out: &mut Vec<u8>) {
        write_map_len(out, 1);
        write_str(out, "SeqNo");
        write_uint(out, self.seq_no.into());
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"SeqNo" => self.seq_no = r.u32("nackResp.SeqNo")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl GoStruct for ErrResp {
    const NAME: &'static str = "errResp";
    const FIELDS: &'static [&'static str] = &["Error"];

    fn encode(&self, out: &mut Vec<u8>) {
        write_map_len(out, 1);
        write_str(out, "Error");
        write_str(out, &self.error);
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"Error" => self.error = r.string("errResp.Error")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// suspect and dead share a shape: Incarnation, Node, From.
fn encode_inc_node_from(out: &mut Vec<u8>, incarnation: u32, node: &str, from: &str) {
    write_map_len(out, 3);
    write_str(out, "From");
    write_str(out, from);
    write_str(out, "Incarnation");
    write_uint(out, incarnation.into());
    write_str(out, "Node");
    write_str(out, node);
}

impl GoStruct for Suspect {
    const NAME: &'static str = "suspect";
    const FIELDS: &'static [&'static str] = &["Incarnation", "Node", "From"];

    fn encode(&self, out: &mut Vec<u8>) {
        encode_inc_node_from(out, self.incarnation, &self.node, &self.from);
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"Incarnation" => self.incarnation = r.u32("suspect.Incarnation")?,
            b"Node" => self.node = r.string("suspect.Node")?,
            b"From" => self.from = r.string("suspect.From")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl GoStruct for Dead {
    const NAME: &'static str = "dead";
    const FIELDS: &'static [&'static str] = &["Incarnation", "Node", "From"];

    fn encode(&self, out: &mut Vec<u8>) {
        encode_inc_node_from(out, self.incarnation, &self.node, &self.from);
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"Incarnation" => self.incarnation = r.u32("dead.Incarnation")?,
            b"Node" => self.node = r.string("dead.Node")?,
            b"From" => self.from = r.string("dead.From")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl GoStruct for Alive {
    const NAME: &'static str = "alive";
    const FIELDS: &'static [&'static str] = &["Incarnation", "Node", "Addr", "Port", "Meta", "Vsn"];

    fn encode(&self, out: &mut Vec<u8>) {
        write_map_len(out, 6);
        write_str(out, "Addr");
        write_bytes(out, &self.addr);
        write_str(out, "Incarnation");
        write_uint(out, self.incarnation.into());
        write_str(out, "Meta");
        write_bytes(out, &self.meta);
        write_str(out, "Node");
        write_str(out, &self.node);
        write_str(out, "Port");
        write_uint(out, self.port.into());
        write_str(out, "Vsn");
        write_bytes(out, &self.vsn);
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"Incarnation" => self.incarnation = r.u32("alive.Incarnation")?,
            b"Node" => self.node = r.string("alive.Node")?,
            b"Addr" => self.addr = r.byte_vec("alive.Addr")?,
            b"Port" => self.port = r.u16("alive.Port")?,
            b"Meta" => self.meta = r.byte_vec("alive.Meta")?,
            b"Vsn" => self.vsn = r.byte_vec("alive.Vsn")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl GoStruct for PushNodeState {
    const NAME: &'static str = "pushNodeState";
    const FIELDS: &'static [&'static str] = &[
        "Name",
        "Addr",
        "Port",
        "Meta",
        "Incarnation",
        "State",
        "Vsn",
    ];

    fn encode(&self, out: &mut Vec<u8>) {
        write_map_len(out, 7);
        write_str(out, "Addr");
        write_bytes(out, &self.addr);
        write_str(out, "Incarnation");
        write_uint(out, self.incarnation.into());
        write_str(out, "Meta");
        write_bytes(out, &self.meta);
        write_str(out, "Name");
        write_str(out, &self.name);
        write_str(out, "Port");
        write_uint(out, self.port.into());
        write_str(out, "State");
        write_int(out, self.state.into());
        write_str(out, "Vsn");
        write_bytes(out, &self.vsn);
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"Name" => self.name = r.string("pushNodeState.Name")?,
            b"Addr" => self.addr = r.byte_vec("pushNodeState.Addr")?,
            b"Port" => self.port = r.u16("pushNodeState.Port")?,
            b"Meta" => self.meta = r.byte_vec("pushNodeState.Meta")?,
            b"Incarnation" => self.incarnation = r.u32("pushNodeState.Incarnation")?,
            b"State" => {
                let v = r.int("pushNodeState.State")?;
                self.state = u8::try_from(v).map_err(|_| WireError::IntOutOfRange {
                    field: "pushNodeState.State".into(),
                    value: v.into(),
                    target: "a node state (0..=255)",
                })?;
            }
            b"Vsn" => self.vsn = r.byte_vec("pushNodeState.Vsn")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The push/pull stream header (`pushPullHeader`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PushPullHeader {
    pub(crate) nodes: i64,
    pub(crate) user_state_len: i64,
    pub(crate) join: bool,
}

impl GoStruct for PushPullHeader {
    const NAME: &'static str = "pushPullHeader";
    const FIELDS: &'static [&'static str] = &["Nodes", "UserStateLen", "Join"];

    fn encode(&self, out: &mut Vec<u8>) {
        write_map_len(out, 3);
        write_str(out, "Join");
        write_bool(out, self.join);
        write_str(out, "Nodes");
        write_int(out, self.nodes);
        write_str(out, "UserStateLen");
        write_int(out, self.user_state_len);
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"Nodes" => self.nodes = r.int("pushPullHeader.Nodes")?,
            b"UserStateLen" => self.user_state_len = r.int("pushPullHeader.UserStateLen")?,
            b"Join" => self.join = r.bool("pushPullHeader.Join")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The stream user message header (`userMsgHeader`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct UserMsgHeader {
    pub(crate) user_msg_len: i64,
}

impl GoStruct for UserMsgHeader {
    const NAME: &'static str = "userMsgHeader";
    const FIELDS: &'static [&'static str] = &["UserMsgLen"];

    fn encode(&self, out: &mut Vec<u8>) {
        write_map_len(out, 1);
        write_str(out, "UserMsgLen");
        write_int(out, self.user_msg_len);
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"UserMsgLen" => self.user_msg_len = r.int("userMsgHeader.UserMsgLen")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The compression wrapper (`compress`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CompressMsg {
    pub(crate) algo: u64,
    pub(crate) buf: Vec<u8>,
}

impl GoStruct for CompressMsg {
    const NAME: &'static str = "compress";
    const FIELDS: &'static [&'static str] = &["Algo", "Buf"];

    fn encode(&self, out: &mut Vec<u8>) {
        write_map_len(out, 2);
        write_str(out, "Algo");
        write_uint(out, self.algo);
        write_str(out, "Buf");
        write_bytes(out, &self.buf);
    }

    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError> {
        match key {
            b"Algo" => self.algo = r.uint("compress.Algo", u64::from(u8::MAX), "uint8")?,
            b"Buf" => self.buf = r.byte_vec("compress.Buf")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_matches_go_bytes() {
        // From the Go golden tool: ping{SeqNo: 1, Node: "node-a"}.
        let want = hex::decode("0082a44e6f6465a66e6f64652d61a55365714e6f01").unwrap();
        let m = Message::Ping(Ping {
            seq_no: 1,
            node: "node-a".into(),
            ..Default::default()
        });
        assert_eq!(m.to_bytes(), want);
        assert_eq!(m.encoded_len(), want.len());
        assert_eq!(decode_message(&want).unwrap(), m);
    }

    #[test]
    fn ack_with_nil_payload() {
        let want = hex::decode("0282a75061796c6f6164c0a55365714e6f09").unwrap();
        let m = Message::Ack(Ack {
            seq_no: 9,
            payload: vec![],
        });
        assert_eq!(m.to_bytes(), want);
    }

    #[test]
    fn decodes_out_of_order_unknown_and_new_forms() {
        // {"Extra": [1, {"a": 2}], "SeqNo": u16 7, "Node": str8 "x"} as a ping.
        let mut b = vec![0u8, 0x83];
        b.extend_from_slice(&[
            0xa5, b'E', b'x', b't', b'r', b'a', 0x92, 1, 0x81, 0xa1, b'a', 2,
        ]);
        b.extend_from_slice(&[0xa5, b'S', b'e', b'q', b'N', b'o', 0xcd, 0, 7]);
        b.extend_from_slice(&[0xa4, b'N', b'o', b'd', b'e', 0xd9, 1, b'x']);
        assert_eq!(
            decode_message(&b).unwrap(),
            Message::Ping(Ping {
                seq_no: 7,
                node: "x".into(),
                ..Default::default()
            })
        );
    }

    #[test]
    fn decodes_array_form_and_nil_struct() {
        // nackResp as [5]; suspect as nil.
        assert_eq!(
            decode_message(&[11, 0x91, 5]).unwrap(),
            Message::Nack(Nack { seq_no: 5 })
        );
        assert_eq!(
            decode_message(&[3, 0xc0]).unwrap(),
            Message::Suspect(Suspect::default())
        );
    }

    #[test]
    fn errors_name_the_field() {
        // ping with SeqNo as a string.
        let b = [0u8, 0x81, 0xa5, b'S', b'e', b'q', b'N', b'o', 0xa1, b'x'];
        let e = decode_message(&b).unwrap_err().to_string();
        assert!(e.contains("ping.SeqNo"), "{e}");
        assert_eq!(decode_message(&[]).unwrap_err(), WireError::Empty);
        assert_eq!(
            decode_message(&[99]).unwrap_err(),
            WireError::UnknownType(99)
        );
        assert!(matches!(
            decode_message(&[7, 0]).unwrap_err(),
            WireError::UnexpectedType { .. }
        ));
    }

    #[test]
    fn node_state_range() {
        let mut out = vec![];
        PushNodeState {
            state: 3,
            ..Default::default()
        }
        .encode(&mut out);
        let got = PushNodeState::decode(&mut Reader::new(&out)).unwrap();
        assert_eq!(got.state, 3);
        // State 300 does not fit.
        let b = [0x81, 0xa5, b'S', b't', b'a', b't', b'e', 0xd1, 0x01, 0x2c];
        assert!(PushNodeState::decode(&mut Reader::new(&b)).is_err());
    }
}
