//! Packet framing: compound, CRC and label headers, and the unwrapping of
//! a received packet into its messages.

use super::compress::read_compressed;
use super::messages::{decode_message, Message};
use super::msgpack::Reader;
use super::{MessageType, WireError, LABEL_MAX_SIZE};

/// How deep compound and compress wrappers may nest in one packet.
/// memberlist sets no limit; real senders nest at most two levels
/// (a compressed compound).
const MAX_NESTING: usize = 8;

/// Builds `[7][count u8][count x u16 BE length][parts...]`.
///
/// # Panics
///
/// If there are more than 255 parts or a part is longer than 65535 bytes;
/// callers split their messages first (memberlist's
/// `makeCompoundMessages` batches by 255).
pub fn encode_compound(parts: &[Vec<u8>]) -> Vec<u8> {
    assert!(
        parts.len() <= 255,
        "a compound message holds at most 255 parts, got {}",
        parts.len()
    );
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(2 + 2 * parts.len() + total);
    out.push(MessageType::Compound as u8);
    out.push(parts.len() as u8);
    for p in parts {
        let len = u16::try_from(p.len())
            .unwrap_or_else(|_| panic!("a compound part is at most 65535 bytes, got {}", p.len()));
        out.extend_from_slice(&len.to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Prefixes `payload` with `[12][crc32 IEEE of payload, big-endian]`. Only
/// for peers whose maximum protocol version is 5 or more.
pub fn add_crc(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(MessageType::HasCrc as u8);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks that `label` fits a label header (at most 255 bytes). The empty
/// label is valid and means "no header".
pub fn validate_label(label: &str) -> Result<(), WireError> {
    if label.len() > LABEL_MAX_SIZE {
        return Err(WireError::LabelTooLong(label.len()));
    }
    Ok(())
}

/// Prefixes `payload` with `[244][len u8][label]`; an empty label leaves
/// the payload unchanged. Streams use the same header, once, before the
/// first message.
///
/// # Panics
///
/// If the label is longer than 255 bytes; check it with [`validate_label`]
/// when it is configured.
pub fn add_label_header(label: &str, payload: &[u8]) -> Vec<u8> {
    if label.is_empty() {
        return payload.to_vec();
    }
    let len = u8::try_from(label.len())
        .unwrap_or_else(|_| panic!("label is {} bytes, over 255", label.len()));
    let mut out = Vec::with_capacity(2 + label.len() + payload.len());
    out.push(MessageType::HasLabel as u8);
    out.push(len);
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a packet into its label ("" if it has no label header) and the
/// rest.
pub fn split_label_header(buf: &[u8]) -> Result<(&str, &[u8]), WireError> {
    if buf.first() != Some(&(MessageType::HasLabel as u8)) {
        return Ok(("", buf));
    }
    let Some(&len) = buf.get(1) else {
        return Err(WireError::truncated("label header length byte", 1, 0));
    };
    if len == 0 {
        return Err(WireError::EmptyLabel);
    }
    let end = 2 + usize::from(len);
    let Some(label) = buf.get(2..end) else {
        return Err(WireError::truncated(
            "label",
            usize::from(len),
            buf.len() - 2,
        ));
    };
    let label = std::str::from_utf8(label).map_err(|_| WireError::InvalidUtf8 {
        field: "label".into(),
    })?;
    Ok((label, &buf[end..]))
}

/// Unwraps a packet body (label already removed, already decrypted) into
/// its messages: an optional top-level CRC (verified), then compound and
/// compress wrappers, nested in any order.
///
/// The outer error means the packet as a whole is unusable (empty, CRC
/// mismatch, broken top-level wrapper). Inner errors belong to single
/// messages or nested wrappers; the other messages are still returned, as
/// memberlist handles each compound part on its own. Truncated compound
/// parts yield one inner [`WireError::CompoundPartTruncated`].
pub fn decode_packet(buf: &[u8]) -> Result<Vec<Result<Message, WireError>>, WireError> {
    let body = match buf.first() {
        None => return Err(WireError::Empty),
        Some(&t) if t == MessageType::HasCrc as u8 => {
            if buf.len() < 5 {
                return Err(WireError::truncated("CRC header", 5, buf.len()));
            }
            let expected = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
            let actual = crc32fast::hash(&buf[5..]);
            if expected != actual {
                return Err(WireError::CrcMismatch { expected, actual });
            }
            &buf[5..]
        }
        Some(_) => buf,
    };
    let mut out = Vec::new();
    unwrap(body, 0, &mut out)?;
    Ok(out)
}

/// Appends the messages in `buf` to `out`. Returns an error only when the
/// wrapper at this level is broken; the caller decides whether that sinks
/// the packet (top level) or just this part.
fn unwrap(
    buf: &[u8],
    depth: usize,
    out: &mut Vec<Result<Message, WireError>>,
) -> Result<(), WireError> {
    let Some((&ty, body)) = buf.split_first() else {
        return Err(WireError::Empty);
    };
    if depth > MAX_NESTING {
        return Err(WireError::TooDeep(MAX_NESTING));
    }
    if ty == MessageType::Compound as u8 {
        let (parts, lost) = split_compound(body)?;
        for part in parts {
            if let Err(e) = unwrap(part, depth + 1, out) {
                out.push(Err(e));
            }
        }
        if let Some(e) = lost {
            out.push(Err(e));
        }
    } else if ty == MessageType::Compress as u8 {
        let plain = read_compressed(&mut Reader::new(body))?;
        unwrap(&plain, depth + 1, out)?;
    } else {
        out.push(decode_message(buf));
    }
    Ok(())
}

/// Splits a compound body (after the type byte) into its parts, plus an
/// error describing parts lost to truncation.
fn split_compound(body: &[u8]) -> Result<(Vec<&[u8]>, Option<WireError>), WireError> {
    let Some((&count, rest)) = body.split_first() else {
        return Err(WireError::truncated("compound part count", 1, 0));
    };
    let parts = usize::from(count);
    if rest.len() < 2 * parts {
        return Err(WireError::CompoundLengths {
            parts,
            needed: 2 * parts,
            available: rest.len(),
        });
    }
    let (lens, mut data) = rest.split_at(2 * parts);
    let mut out = Vec::with_capacity(parts);
    for (index, l) in lens.chunks_exact(2).enumerate() {
        let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
        if data.len() < len {
            return Ok((
                out,
                Some(WireError::CompoundPartTruncated {
                    index,
                    parts,
                    len,
                    available: data.len(),
                    missing: parts - index,
                }),
            ));
        }
        let (part, tail) = data.split_at(len);
        out.push(part);
        data = tail;
    }
    Ok((out, None))
}

#[cfg(test)]
mod tests {
    use super::super::{compress_payload, Nack, Ping};
    use super::*;

    fn nack(n: u32) -> Message {
        Message::Nack(Nack { seq_no: n })
    }

    #[test]
    fn compound_roundtrip_and_nesting() {
        let parts = vec![nack(1).to_bytes(), compress_payload(&nack(2).to_bytes())];
        let c = encode_compound(&parts);
        let nested = compress_payload(&encode_compound(&[c.clone(), nack(3).to_bytes()]));
        let got: Vec<_> = decode_packet(&add_crc(&nested))
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, vec![nack(1), nack(2), nack(3)]);
    }

    #[test]
    fn compound_length_table_truncated() {
        let e = decode_packet(&[7, 5, 0, 1, 0]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "compound message declares 5 parts but only 3 length bytes follow (needs 10)"
        );
    }

    #[test]
    fn bad_parts_do_not_drop_good_ones() {
        let good = nack(4).to_bytes();
        let mut c = encode_compound(&[vec![99], good.clone(), vec![0, 0xc1]]);
        // Add a fourth part that is cut off: patch the count and lengths.
        c[1] = 4;
        c.splice(2 + 6..2 + 6, [0u8, 50]);
        let got = decode_packet(&c).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Err(WireError::UnknownType(99)));
        assert_eq!(got[1], Ok(nack(4)));
        assert!(got[2].is_err());
        assert!(matches!(
            got[3],
            Err(WireError::CompoundPartTruncated {
                index: 3,
                missing: 1,
                ..
            })
        ));
    }

    #[test]
    fn crc_mismatch_and_short_header() {
        let mut p = add_crc(&nack(1).to_bytes());
        *p.last_mut().unwrap() ^= 1;
        assert!(matches!(
            decode_packet(&p),
            Err(WireError::CrcMismatch { .. })
        ));
        assert!(decode_packet(&[12, 0, 0]).unwrap_err().is_truncated());
    }

    #[test]
    fn crc_only_at_top_level() {
        // A CRC header inside a compound is not a known single message.
        let inner = add_crc(&nack(1).to_bytes());
        let got = decode_packet(&encode_compound(&[inner])).unwrap();
        assert!(matches!(got[0], Err(WireError::UnexpectedType { .. })));
    }

    #[test]
    fn labels() {
        let p = add_label_header("shop/default", b"xyz");
        assert_eq!(
            split_label_header(&p).unwrap(),
            ("shop/default", &b"xyz"[..])
        );
        assert_eq!(add_label_header("", b"xyz"), b"xyz");
        assert_eq!(split_label_header(b"xyz").unwrap(), ("", &b"xyz"[..]));
        assert_eq!(
            split_label_header(&[244, 0]).unwrap_err(),
            WireError::EmptyLabel
        );
        assert!(split_label_header(&[244, 5, b'a'])
            .unwrap_err()
            .is_truncated());
        assert!(split_label_header(&[244]).unwrap_err().is_truncated());
        assert!(validate_label(&"x".repeat(255)).is_ok());
        assert_eq!(
            validate_label(&"x".repeat(256)).unwrap_err(),
            WireError::LabelTooLong(256)
        );
    }

    #[test]
    fn nesting_limit() {
        let mut p = Message::Ping(Ping::default()).to_bytes();
        for _ in 0..20 {
            p = encode_compound(&[p]);
        }
        let got = decode_packet(&p).unwrap();
        assert!(got.iter().all(Result::is_err));
    }
}
