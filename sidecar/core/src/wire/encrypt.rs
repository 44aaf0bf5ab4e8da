//! Encryption framing only; the AES-GCM keyring and the sealing and opening
//! of these layouts live in [`crate::keyring`], and the membership core
//! decides when to apply them.
//!
//! Where encryption sits in memberlist's pipeline:
//!
//! * **Packets** (send): encode → compound → compress (if enabled and
//!   smaller) → CRC (peer pmax ≥ 5) → *encrypt* → label header. The
//!   encrypted packet is `[version u8][nonce 12][ciphertext][tag 16]`
//!   (version 0 also PKCS#7-pads the plaintext to 16 bytes), with the
//!   label's bytes as additional authenticated data. Receive runs the
//!   reverse: [`super::split_label_header`], *decrypt*, then
//!   [`super::decode_packet`].
//! * **Streams**: after the optional label header, an encrypted stream
//!   message is `[10][length u32 BE][version][nonce][ciphertext][tag]`,
//!   authenticated with the 5 header bytes followed by the label's bytes.
//!   The plaintext is one complete stream message (possibly compressed),
//!   which goes to [`super::decode_stream`]. [`split_encrypted_stream`]
//!   cuts such a frame out of a stream buffer.

use super::{MessageType, WireError, MAX_PUSH_STATE_BYTES};

/// Encryption version byte 0: AES-GCM with PKCS#7 padding (protocol 1).
pub const ENCRYPTION_VERSION_PADDED: u8 = 0;
/// Encryption version byte 1: AES-GCM without padding (protocol 2+).
pub const ENCRYPTION_VERSION_UNPADDED: u8 = 1;
/// GCM nonce length.
pub const NONCE_SIZE: usize = 12;
/// GCM tag length.
pub const TAG_SIZE: usize = 16;

/// An encrypted stream frame cut out of a stream buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedStreamFrame<'a> {
    /// `[10][length u32 BE]`: the start of the additional authenticated
    /// data (the stream label's bytes follow it in the AAD).
    pub header: [u8; 5],
    /// `[version][nonce][ciphertext][tag]`.
    pub payload: &'a [u8],
    /// Bytes of the buffer the frame used (5 + payload length).
    pub consumed: usize,
}

/// Cuts an encrypted frame from the start of `buf` (label already
/// removed): `Ok(None)` if more bytes are needed. Errors if the buffer does
/// not start with type 10 or the declared length is over memberlist's
/// 20 MiB limit.
pub fn split_encrypted_stream(buf: &[u8]) -> Result<Option<EncryptedStreamFrame<'_>>, WireError> {
    match buf.first() {
        None => return Ok(None),
        Some(&t) if t != MessageType::Encrypt as u8 => {
            return Err(WireError::UnexpectedType {
                ty: super::describe_type(t),
                context: "where an encrypted stream frame was expected",
            })
        }
        Some(_) => {}
    }
    let Some(h) = buf.get(..5) else {
        return Ok(None);
    };
    let header = [h[0], h[1], h[2], h[3], h[4]];
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > MAX_PUSH_STATE_BYTES {
        return Err(WireError::TooLarge {
            what: "encrypted stream payload".into(),
            value: len as u64,
            limit: MAX_PUSH_STATE_BYTES as u64,
        });
    }
    Ok(buf.get(5..5 + len).map(|payload| EncryptedStreamFrame {
        header,
        payload,
        consumed: 5 + len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let b = [10, 0, 0, 0, 3, 1, 2, 3, 9];
        assert_eq!(split_encrypted_stream(&b[..4]).unwrap(), None);
        assert_eq!(split_encrypted_stream(&b[..7]).unwrap(), None);
        let f = split_encrypted_stream(&b).unwrap().unwrap();
        assert_eq!(f.payload, &[1, 2, 3]);
        assert_eq!(f.consumed, 8);
        assert!(split_encrypted_stream(&[10, 0xff, 0, 0, 0]).is_err());
        assert!(split_encrypted_stream(&[6]).is_err());
    }
}
