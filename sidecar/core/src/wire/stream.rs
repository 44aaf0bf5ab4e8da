//! TCP stream messages: ping/ack/err, push/pull and user messages, with an
//! optional compress wrapper, decoded incrementally.

use super::compress::{compress_payload, read_compressed};
use super::messages::{Ack, ErrResp, Ping, PushNodeState, PushPull, PushPullHeader, UserMsgHeader};
use super::msgpack::{GoStruct, Reader};
use super::{
    describe_type, MessageType, WireError, MAX_PUSH_STATE_BYTES, MAX_PUSH_STATE_NODES,
    MAX_STREAM_MESSAGE_BYTES, MAX_USER_MSG_BYTES,
};

/// A message carried on a TCP stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// A TCP fallback probe (type 0).
    Ping(Ping),
    /// Its reply (type 2).
    Ack(Ack),
    /// A state exchange (type 6).
    PushPull(PushPull),
    /// A reliable user message (type 8).
    User(Vec<u8>),
    /// An error reply (type 13).
    Err(ErrResp),
}

/// Encodes one stream message exactly as memberlist writes it:
/// `[type][msgpack body]` for ping, ack and err; for push/pull the header
/// `{Nodes, UserStateLen, Join}`, each node state, then the raw user state;
/// for a user message `{UserMsgLen}` then the raw bytes. With `compress`
/// the whole thing is wrapped in a compress message, as memberlist does on
/// streams whenever compression is enabled. Label header and encryption
/// are the caller's.
pub fn encode_stream(msg: &StreamMessage, compress: bool) -> Vec<u8> {
    let mut out = Vec::new();
    match msg {
        StreamMessage::Ping(p) => {
            out.push(MessageType::Ping as u8);
            p.encode(&mut out);
        }
        StreamMessage::Ack(a) => {
            out.push(MessageType::Ack as u8);
            a.encode(&mut out);
        }
        StreamMessage::Err(e) => {
            out.push(MessageType::Err as u8);
            e.encode(&mut out);
        }
        StreamMessage::User(data) => {
            out.push(MessageType::User as u8);
            UserMsgHeader {
                user_msg_len: data.len() as i64,
            }
            .encode(&mut out);
            out.extend_from_slice(data);
        }
        StreamMessage::PushPull(pp) => {
            out.push(MessageType::PushPull as u8);
            PushPullHeader {
                nodes: pp.nodes.len() as i64,
                user_state_len: pp.user_state.len() as i64,
                join: pp.join,
            }
            .encode(&mut out);
            for n in &pp.nodes {
                n.encode(&mut out);
            }
            out.extend_from_slice(&pp.user_state);
        }
    }
    if compress {
        compress_payload(&out)
    } else {
        out
    }
}

/// Reads the optional label header at the start of a stream: `Ok(None)`
/// if more bytes are needed to tell, else the label ("" when the stream has
/// none) and how many bytes it took (0 when none).
pub fn split_stream_label(buf: &[u8]) -> Result<Option<(String, usize)>, WireError> {
    match buf.first() {
        None => return Ok(None),
        Some(&b) if b != MessageType::HasLabel as u8 => return Ok(Some((String::new(), 0))),
        Some(_) => {}
    }
    let Some(&len) = buf.get(1) else {
        return Ok(None);
    };
    if len == 0 {
        return Err(WireError::EmptyLabel);
    }
    let end = 2 + usize::from(len);
    let Some(label) = buf.get(2..end) else {
        return Ok(None);
    };
    let label = std::str::from_utf8(label).map_err(|_| WireError::InvalidUtf8 {
        field: "stream label".into(),
    })?;
    Ok(Some((label.to_string(), end)))
}

/// Decodes the stream message at the start of `buf` (label header already
/// removed, already decrypted): `Ok(None)` if more bytes are needed,
/// otherwise the message and how many bytes it used. A leading compress
/// wrapper is undone first.
///
/// Errors: malformed msgpack, a message type that cannot appear on a
/// stream, an encrypted stream ([`WireError::Encrypted`]), memberlist's
/// limits (1Mi nodes, 20 MiB user state, 20 MiB user message, 40 MiB
/// decompressed), and a message that would need more than
/// [`MAX_STREAM_MESSAGE_BYTES`] to complete. Every call re-parses from the
/// start of `buf`.
pub fn decode_stream(buf: &[u8]) -> Result<Option<(StreamMessage, usize)>, WireError> {
    let Some((&ty, body)) = buf.split_first() else {
        return Ok(None);
    };
    let result = if ty == MessageType::Compress as u8 {
        let mut r = Reader::new(body);
        read_compressed(&mut r).and_then(|plain| {
            let (&inner, rest) = plain.split_first().ok_or(WireError::DecompressedEmpty)?;
            // The decompressed message cannot grow, so truncation is fatal.
            decode_body(inner, rest)
                .map_err(|e| WireError::InsideCompressed(Box::new(e)))
                .map(|(msg, _)| (msg, 1 + r.pos()))
        })
    } else {
        decode_body(ty, body).map(|(msg, used)| (msg, 1 + used))
    };
    match result {
        Ok(done) => Ok(Some(done)),
        Err(e) if e.is_truncated() => {
            if buf.len() >= MAX_STREAM_MESSAGE_BYTES {
                Err(WireError::TooLarge {
                    what: "incomplete stream message".into(),
                    value: buf.len() as u64,
                    limit: MAX_STREAM_MESSAGE_BYTES as u64,
                })
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(e),
    }
}

/// Decodes a stream message body of type `ty`; returns the bytes of `body`
/// it used.
fn decode_body(ty: u8, body: &[u8]) -> Result<(StreamMessage, usize), WireError> {
    let mut r = Reader::new(body);
    let msg = match MessageType::from_u8(ty) {
        Some(MessageType::Ping) => StreamMessage::Ping(Ping::decode(&mut r)?),
        Some(MessageType::Ack) => StreamMessage::Ack(Ack::decode(&mut r)?),
        Some(MessageType::Err) => StreamMessage::Err(ErrResp::decode(&mut r)?),
        Some(MessageType::User) => {
            let h = UserMsgHeader::decode(&mut r)?;
            let len = checked_len("user message length", h.user_msg_len, MAX_USER_MSG_BYTES)?;
            StreamMessage::User(r.take(len, "user message")?.to_vec())
        }
        Some(MessageType::PushPull) => StreamMessage::PushPull(decode_push_pull(&mut r)?),
        Some(MessageType::Encrypt) => return Err(WireError::Encrypted),
        Some(_) => {
            return Err(WireError::UnexpectedType {
                ty: describe_type(ty),
                context: "on a stream",
            })
        }
        None => return Err(WireError::UnknownType(ty)),
    };
    Ok((msg, r.pos()))
}

fn decode_push_pull(r: &mut Reader<'_>) -> Result<PushPull, WireError> {
    let h = PushPullHeader::decode(r)?;
    let count = checked_len("push/pull node count", h.nodes, MAX_PUSH_STATE_NODES)?;
    let user_len = checked_len(
        "push/pull user state length",
        h.user_state_len,
        MAX_PUSH_STATE_BYTES,
    )?;
    // Each node state takes at least one byte; do not reserve more than the
    // input can back.
    let mut nodes = Vec::with_capacity(count.min(r.remaining()));
    for _ in 0..count {
        nodes.push(PushNodeState::decode(r)?);
    }
    let user_state = r.take(user_len, "push/pull user state")?.to_vec();
    Ok(PushPull {
        join: h.join,
        nodes,
        user_state,
    })
}

fn checked_len(what: &'static str, v: i64, limit: usize) -> Result<usize, WireError> {
    if v < 0 {
        return Err(WireError::Negative { what, value: v });
    }
    if v as u64 > limit as u64 {
        return Err(WireError::TooLarge {
            what: what.into(),
            value: v as u64,
            limit: limit as u64,
        });
    }
    Ok(v as usize)
}

#[cfg(test)]
mod tests {
    use super::super::add_label_header;
    use super::*;

    fn sample() -> StreamMessage {
        StreamMessage::PushPull(PushPull {
            join: true,
            nodes: vec![
                PushNodeState {
                    name: "a".into(),
                    addr: vec![10, 0, 0, 1],
                    port: 7946,
                    state: 1,
                    vsn: vec![1, 5, 5, 2, 5, 4],
                    ..Default::default()
                };
                3
            ],
            user_state: b"state".to_vec(),
        })
    }

    #[test]
    fn incremental_decode() {
        for compress in [false, true] {
            let mut bytes = encode_stream(&sample(), compress);
            let full = bytes.len();
            for cut in 0..full {
                assert_eq!(decode_stream(&bytes[..cut]).unwrap(), None, "cut {cut}");
            }
            bytes.extend_from_slice(b"next");
            assert_eq!(decode_stream(&bytes).unwrap(), Some((sample(), full)));
        }
    }

    #[test]
    fn labels() {
        let b = add_label_header("shop/default", &encode_stream(&sample(), false));
        assert_eq!(split_stream_label(&b[..1]).unwrap(), None);
        assert_eq!(split_stream_label(&b[..5]).unwrap(), None);
        let (label, n) = split_stream_label(&b).unwrap().unwrap();
        assert_eq!(label, "shop/default");
        assert_eq!(decode_stream(&b[n..]).unwrap().unwrap().0, sample());
        assert_eq!(split_stream_label(&[6]).unwrap(), Some((String::new(), 0)));
        assert_eq!(split_stream_label(&[]).unwrap(), None);
        assert_eq!(
            split_stream_label(&[244, 0]).unwrap_err(),
            WireError::EmptyLabel
        );
    }

    #[test]
    fn limits() {
        let mut b = vec![6u8];
        PushPullHeader {
            nodes: MAX_PUSH_STATE_NODES as i64 + 1,
            ..Default::default()
        }
        .encode(&mut b);
        assert!(matches!(decode_stream(&b), Err(WireError::TooLarge { .. })));

        let mut b = vec![8u8];
        UserMsgHeader { user_msg_len: -1 }.encode(&mut b);
        assert!(matches!(decode_stream(&b), Err(WireError::Negative { .. })));

        assert_eq!(
            decode_stream(&[10, 0, 0]).unwrap_err(),
            WireError::Encrypted
        );
        assert!(matches!(
            decode_stream(&[4, 0x80]).unwrap_err(),
            WireError::UnexpectedType { .. }
        ));
    }

    #[test]
    fn compressed_but_truncated_inside_is_fatal() {
        let inner = &encode_stream(&sample(), false);
        let c = compress_payload(&inner[..inner.len() - 1]);
        assert!(matches!(
            decode_stream(&c),
            Err(WireError::InsideCompressed(_))
        ));
    }
}
