//! memberlist wire format: msgpack bodies, compound, CRC, label and
//! compression framing, and the TCP stream messages.
//!
//! Everything here is pure: bytes in, values out (and back). The format is
//! hashicorp/memberlist v0.7.0's, byte for byte, as produced by go-msgpack's
//! default `MsgpackHandle`:
//!
//! * a message struct is a msgpack map keyed by the Go field names, written
//!   in **byte-wise sorted key order** (go-msgpack sorts struct fields by
//!   name when it writes a struct as a map), `omitempty` fields left out
//!   when zero;
//! * strings and byte slices use the old msgpack "raw" forms only
//!   (fixraw `0xa0..=0xbf`, raw16 `0xda`, raw32 `0xdb`; never str8 or bin);
//! * a Go `nil` byte slice is msgpack nil (`0xc0`); Gossamer has no nil/empty
//!   distinction and always writes an empty slice as nil;
//! * unsigned Go fields use the smallest unsigned form (fixint, `0xcc`,
//!   `0xcd`, `0xce`); Go `int` fields (push/pull counts, node state) use the
//!   smallest *signed* form (fixint, then `0xd1` int16, `0xd2` int32, ...).
//!
//! Decoders are lenient the way go-msgpack is: any integer width, str8 and
//! bin forms, nil for any zero value, fields in any order, unknown fields
//! skipped, and a struct written as an array (declaration order). They never
//! panic and never allocate more than the input can back.
//!
//! Encryption (AES-GCM keyring) is a separate layer: see [`encrypt`] for
//! the seam.

mod addr;
mod compress;
pub mod encrypt;
mod error;
mod framing;
mod messages;
mod msgpack;
mod stream;

pub use addr::{ip_from_wire, ip_to_wire};
pub use compress::{compress_payload, decompress_payload, lzw_compress, lzw_decompress};
pub use error::WireError;
pub use framing::{
    add_crc, add_label_header, decode_packet, encode_compound, split_label_header, validate_label,
};
pub use messages::{
    decode_message, Ack, Alive, Dead, ErrResp, IndirectPing, Message, Nack, Ping, PushNodeState,
    PushPull, Suspect,
};
pub use stream::{decode_stream, encode_stream, split_stream_label, StreamMessage};

/// Largest node metadata memberlist accepts (`MetaMaxSize`).
pub const META_MAX_SIZE: usize = 512;
/// Largest push/pull user state, and largest encrypted stream payload
/// (`maxPushStateBytes`).
pub const MAX_PUSH_STATE_BYTES: usize = 20 * 1024 * 1024;
/// Largest node count a push/pull header may declare (`maxPushStateNodes`).
pub const MAX_PUSH_STATE_NODES: usize = 1024 * 1024;
/// Largest user message read off a stream (`maxUserMsgBytes`).
pub const MAX_USER_MSG_BYTES: usize = 20 * 1024 * 1024;
/// Largest output of one decompression (`maxDecompressedBytes`).
pub const MAX_DECOMPRESSED_BYTES: usize = 2 * MAX_PUSH_STATE_BYTES;
/// Largest single stream message [`decode_stream`] will wait for, and the
/// largest string or byte field any decoder accepts. memberlist itself has no
/// such cap on unencrypted streams (it relies on its TCP timeout); 64 MiB
/// covers a maximal compressed push/pull (LZW output is at most 1.5 times
/// its 40 MiB input budget).
pub const MAX_STREAM_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Longest packet or stream label (`LabelMaxSize`).
pub const LABEL_MAX_SIZE: usize = 255;

/// The first byte of every memberlist message. The values are part of the
/// protocol and append-only.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Direct probe.
    Ping = 0,
    /// Probe another member on our behalf.
    IndirectPing = 1,
    /// Reply to a ping.
    Ack = 2,
    /// A member is suspected to have failed.
    Suspect = 3,
    /// A member is alive (also a join announcement).
    Alive = 4,
    /// A member has failed or left.
    Dead = 5,
    /// Full state exchange (streams only).
    PushPull = 6,
    /// Several messages in one packet.
    Compound = 7,
    /// Opaque application payload.
    User = 8,
    /// LZW-compressed wrapper.
    Compress = 9,
    /// Encrypted stream wrapper.
    Encrypt = 10,
    /// Negative reply to an indirect ping.
    Nack = 11,
    /// CRC32 header (protocol 5 and later).
    HasCrc = 12,
    /// Error reply on a stream.
    Err = 13,
    /// Label header. Deliberately far from the other values so it cannot be
    /// mistaken for an encryption version byte or a message type.
    HasLabel = 244,
}

impl MessageType {
    /// The message type for a type byte, or `None` if memberlist defines no
    /// such type.
    pub fn from_u8(b: u8) -> Option<Self> {
        use MessageType::*;
        Some(match b {
            0 => Ping,
            1 => IndirectPing,
            2 => Ack,
            3 => Suspect,
            4 => Alive,
            5 => Dead,
            6 => PushPull,
            7 => Compound,
            8 => User,
            9 => Compress,
            10 => Encrypt,
            11 => Nack,
            12 => HasCrc,
            13 => Err,
            244 => HasLabel,
            _ => return None,
        })
    }

    /// A short lowercase name for error messages and logs.
    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Ping => "ping",
            IndirectPing => "indirect ping",
            Ack => "ack",
            Suspect => "suspect",
            Alive => "alive",
            Dead => "dead",
            PushPull => "push/pull",
            Compound => "compound",
            User => "user",
            Compress => "compress",
            Encrypt => "encrypt",
            Nack => "nack",
            HasCrc => "crc",
            Err => "error",
            HasLabel => "label",
        }
    }
}

/// A printable description of a type byte, e.g. `"7 (compound)"`.
pub(crate) fn describe_type(b: u8) -> String {
    match MessageType::from_u8(b) {
        Some(t) => format!("{b} ({})", t.name()),
        None => format!("{b} (unknown)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_bytes_roundtrip() {
        for b in 0..=255u8 {
            if let Some(t) = MessageType::from_u8(b) {
                assert_eq!(t as u8, b);
            }
        }
        assert_eq!(MessageType::from_u8(14), None);
        assert_eq!(MessageType::HasLabel as u8, 244);
        assert_eq!(describe_type(7), "7 (compound)");
    }
}
