//! Decoding stream messages off the core's task: label check, decryption
//! of encrypted frames (type 10), then the plain stream decoder.

use crate::keyring::{open_stream_frame, DecryptError, Keyring};
use crate::wire::{self, encrypt::split_encrypted_stream, MessageType, StreamMessage, WireError};

/// Why a stream message could not be read. Texts name fingerprints and
/// labels, never key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamCodecError {
    /// The stream's label is not this cluster's.
    #[error("stream label {got:?} does not match this cluster's label {expected:?}: the peer belongs to another cluster")]
    Label {
        /// The label the peer sent.
        got: String,
        /// Ours.
        expected: String,
    },
    /// An encrypted frame that no installed key opens.
    #[error("cannot decrypt the stream: {0}")]
    Decrypt(DecryptError),
    /// A plain message while encryption is enforced.
    #[error("encryption is configured but the stream is not encrypted: the peer has no key, or sends plain gossip (verify-outgoing off) while this node enforces encryption (verify-incoming on)")]
    NotEncrypted,
    /// An encrypted frame while this node has no key.
    #[error(
        "the stream is encrypted and encryption is not configured here: install the cluster's key"
    )]
    EncryptionNotConfigured,
    /// The decrypted frame holds less than one whole message.
    #[error("the decrypted stream frame holds an incomplete message")]
    IncompleteEncrypted,
    /// Malformed bytes, or over a limit.
    #[error("{0}")]
    Wire(WireError),
}

impl StreamCodecError {
    /// True for the failures counted as decryption failures: a frame no
    /// key opens, plain data where encryption is enforced, or encrypted
    /// data without a keyring.
    pub fn is_decrypt_failure(&self) -> bool {
        matches!(
            self,
            StreamCodecError::Decrypt(_)
                | StreamCodecError::NotEncrypted
                | StreamCodecError::EncryptionNotConfigured
        )
    }
}

impl From<WireError> for StreamCodecError {
    fn from(e: WireError) -> Self {
        StreamCodecError::Wire(e)
    }
}

impl From<StreamCodecError> for String {
    fn from(e: StreamCodecError) -> String {
        e.to_string()
    }
}

/// Decodes stream messages as this node expects them; cheap to clone (the
/// keyring is shared). A codec keeps the keys it was made with: ask the
/// core for a new one after the keyring changes.
#[derive(Debug, Clone)]
pub struct StreamCodec {
    pub(super) label: String,
    pub(super) keyring: Keyring,
    pub(super) verify_incoming: bool,
}

impl StreamCodec {
    /// A codec for a cluster `label`, decrypting with `keyring`; with
    /// `verify_incoming` and keys installed, plain messages are refused.
    /// (A running node's codec comes from
    /// [`crate::membership::Membership::stream_codec`].)
    pub fn new(label: impl Into<String>, keyring: Keyring, verify_incoming: bool) -> Self {
        StreamCodec {
            label: label.into(),
            keyring,
            verify_incoming,
        }
    }

    /// Parses one stream message from the start of `buf`. `Ok(None)` means
    /// more bytes are needed. With `inbound`, a label header is expected as
    /// on an accepted connection and checked against ours. An encrypted
    /// frame is decrypted with the keyring, the label authenticated with
    /// it. On success returns the message and the bytes it took.
    ///
    /// # Errors
    /// See [`StreamCodecError`]; each names what was wrong.
    pub fn decode(
        &self,
        buf: &[u8],
        inbound: bool,
    ) -> Result<Option<(StreamMessage, usize)>, StreamCodecError> {
        let mut offset = 0;
        if inbound {
            match wire::split_stream_label(buf)? {
                None => return Ok(None),
                Some((label, n)) => {
                    if label != self.label {
                        return Err(StreamCodecError::Label {
                            got: label.to_string(),
                            expected: self.label.clone(),
                        });
                    }
                    offset = n;
                }
            }
        }
        let rest = &buf[offset..];
        let Some(&first) = rest.first() else {
            return Ok(None);
        };
        let encrypted = first == MessageType::Encrypt as u8;
        if encrypted {
            if self.keyring.is_empty() {
                return Err(StreamCodecError::EncryptionNotConfigured);
            }
            let Some(frame) = split_encrypted_stream(rest)? else {
                return Ok(None);
            };
            let plain = open_stream_frame(&self.keyring, &frame, &self.label)
                .map_err(StreamCodecError::Decrypt)?;
            return match wire::decode_stream(&plain) {
                Ok(Some((msg, _))) => Ok(Some((msg, offset + frame.consumed))),
                Ok(None) => Err(StreamCodecError::IncompleteEncrypted),
                Err(e) if e.is_truncated() => Err(StreamCodecError::IncompleteEncrypted),
                Err(e) => Err(e.into()),
            };
        }
        if !self.keyring.is_empty() && self.verify_incoming {
            return Err(StreamCodecError::NotEncrypted);
        }
        match wire::decode_stream(rest)? {
            None => Ok(None),
            Some((msg, n)) => Ok(Some((msg, offset + n))),
        }
    }
}
