//! memberlist's encrypted payload and encrypted stream frame.
//!
//! Payload: `[version][nonce 12][ciphertext][tag 16]`, AES-GCM with the
//! caller's additional data. Version 0 PKCS#7-pads the plaintext to the
//! 16-byte block size first; version 1 (protocol 2 and up) does not.
//!
//! Stream frame: `[10][length u32 BE][payload]`, where the additional data
//! is those 5 header bytes followed by the stream label's bytes.

use rand::CryptoRng;

use super::{Key, Keyring, KeyringError};
use crate::wire::encrypt::{
    EncryptedStreamFrame, ENCRYPTION_VERSION_PADDED, ENCRYPTION_VERSION_UNPADDED, NONCE_SIZE,
    TAG_SIZE,
};
use crate::wire::MessageType;

/// AES block size, the PKCS#7 padding unit of version 0.
const BLOCK_SIZE: usize = 16;

/// Which payload layout to write; both are always read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncryptionVersion {
    /// Version 0: PKCS#7 padding (memberlist protocol 1).
    Padded,
    /// Version 1: no padding (memberlist protocol 2 and up).
    Unpadded,
}

impl EncryptionVersion {
    /// The version memberlist writes at `protocol_version`: 0 only on
    /// protocol 1, 1 on every later one.
    pub fn for_protocol(protocol_version: u8) -> Self {
        if protocol_version <= 1 {
            EncryptionVersion::Padded
        } else {
            EncryptionVersion::Unpadded
        }
    }

    /// The version byte.
    pub fn byte(self) -> u8 {
        match self {
            EncryptionVersion::Padded => ENCRYPTION_VERSION_PADDED,
            EncryptionVersion::Unpadded => ENCRYPTION_VERSION_UNPADDED,
        }
    }

    /// The most bytes encryption adds to a message (memberlist's
    /// `encryptOverhead`): 45 for version 0, 29 for version 1.
    pub fn max_overhead(self) -> usize {
        match self {
            EncryptionVersion::Padded => 1 + NONCE_SIZE + BLOCK_SIZE + TAG_SIZE,
            EncryptionVersion::Unpadded => 1 + NONCE_SIZE + TAG_SIZE,
        }
    }

    /// Encrypted size of a `plaintext_len`-byte message.
    pub fn encrypted_len(self, plaintext_len: usize) -> usize {
        let pad = match self {
            EncryptionVersion::Padded => BLOCK_SIZE - plaintext_len % BLOCK_SIZE,
            EncryptionVersion::Unpadded => 0,
        };
        1 + NONCE_SIZE + plaintext_len + pad + TAG_SIZE
    }
}

/// Why a payload or stream frame could not be decrypted. No variant holds
/// key bytes or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// Encryption is on, and the payload is empty.
    #[error("cannot decrypt an empty payload")]
    Empty,
    /// A version byte other than 0 or 1.
    #[error("unsupported encryption version {0} (0 and 1 are defined): the sender is not memberlist-compatible, or the message is not encrypted")]
    UnsupportedVersion(u8),
    /// Shorter than version, nonce, padding (v0) and tag.
    #[error(
        "encrypted payload of {len} bytes is too short: version {version} needs at least {min}"
    )]
    TooShort {
        /// Payload length.
        len: usize,
        /// The version byte.
        version: u8,
        /// Smallest valid length for it.
        min: usize,
    },
    /// No installed key authenticates the message: the sender uses a key
    /// this node does not have, or the label (additional data) differs, or
    /// the bytes were altered.
    #[error("no installed key could decrypt the message (tried {tried}): the sender encrypts with a key this node does not hold, or the bytes were altered")]
    NoKey {
        /// Fingerprints of the keys tried, comma-separated.
        tried: String,
    },
    /// Version 0 plaintext whose PKCS#7 padding is malformed.
    #[error("decrypted version 0 payload has malformed PKCS#7 padding")]
    BadPadding,
    /// There are no keys to decrypt with.
    #[error("the keyring is empty: no key to decrypt with")]
    NoKeys,
}

/// Appends `[version][nonce][ciphertext][tag]` for `msg` to `dst`,
/// encrypting with `key` under additional data `aad`. The nonce MUST be
/// unique per key, so `nonces` MUST be a cryptographically secure RNG
/// seeded from OS entropy in production (tests may pass a seeded one).
pub fn encrypt_payload<R: CryptoRng + ?Sized>(
    version: EncryptionVersion,
    key: &Key,
    msg: &[u8],
    aad: &[u8],
    nonces: &mut R,
    dst: &mut Vec<u8>,
) {
    dst.reserve(version.encrypted_len(msg.len()));
    dst.push(version.byte());
    let mut nonce = [0u8; NONCE_SIZE];
    nonces.fill_bytes(&mut nonce);
    dst.extend_from_slice(&nonce);
    let start = dst.len();
    dst.extend_from_slice(msg);
    if version == EncryptionVersion::Padded {
        let pad = BLOCK_SIZE - msg.len() % BLOCK_SIZE;
        dst.resize(dst.len() + pad, pad as u8);
    }
    let tag = key.seal_in_place(&nonce, aad, &mut dst[start..]);
    dst.extend_from_slice(&tag);
}

/// Decrypts a payload written by [`encrypt_payload`] (or by memberlist)
/// with the first of `keys` that authenticates it; version 0 padding is
/// removed. Never panics, whatever the input.
///
/// # Errors
/// See [`DecryptError`].
pub fn decrypt_payload(keys: &[Key], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let (&vsn, _) = msg.split_first().ok_or(DecryptError::Empty)?;
    let version = match vsn {
        ENCRYPTION_VERSION_PADDED => EncryptionVersion::Padded,
        ENCRYPTION_VERSION_UNPADDED => EncryptionVersion::Unpadded,
        v => return Err(DecryptError::UnsupportedVersion(v)),
    };
    let min = version.encrypted_len(0);
    if msg.len() < min {
        return Err(DecryptError::TooShort {
            len: msg.len(),
            version: vsn,
            min,
        });
    }
    if keys.is_empty() {
        return Err(DecryptError::NoKeys);
    }
    let nonce = &msg[1..1 + NONCE_SIZE];
    let (body, tag) = msg[1 + NONCE_SIZE..].split_at(msg.len() - 1 - NONCE_SIZE - TAG_SIZE);
    let mut plain = body.to_vec();
    // The tag is verified before any byte is decrypted, so a failed key
    // leaves `plain` as it was for the next one.
    if !keys
        .iter()
        .any(|k| k.open_in_place(nonce, aad, &mut plain, tag))
    {
        return Err(DecryptError::NoKey {
            tried: keys
                .iter()
                .map(|k| k.fingerprint().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if version == EncryptionVersion::Padded {
        let pad = *plain.last().ok_or(DecryptError::BadPadding)? as usize;
        if pad == 0 || pad > BLOCK_SIZE || pad > plain.len() {
            return Err(DecryptError::BadPadding);
        }
        if plain[plain.len() - pad..]
            .iter()
            .any(|&b| b as usize != pad)
        {
            return Err(DecryptError::BadPadding);
        }
        plain.truncate(plain.len() - pad);
    }
    Ok(plain)
}

/// The additional data of an encrypted stream frame: its 5 header bytes,
/// then the stream label.
fn stream_aad(header: &[u8; 5], label: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(5 + label.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(label.as_bytes());
    aad
}

/// Wraps one complete stream message (possibly compressed) in an encrypted
/// frame `[10][length][payload]`, as memberlist's `encryptLocalState`.
/// The label header, when there is one, goes before the frame and is not
/// part of it.
///
/// # Errors
/// [`KeyringError::Empty`] when the keyring is empty.
pub fn seal_stream_frame<R: CryptoRng + ?Sized>(
    keyring: &Keyring,
    version: EncryptionVersion,
    msg: &[u8],
    label: &str,
    nonces: &mut R,
) -> Result<Vec<u8>, KeyringError> {
    let key = keyring.primary().ok_or(KeyringError::Empty)?;
    let len = version.encrypted_len(msg.len());
    let mut out = Vec::with_capacity(5 + len);
    out.push(MessageType::Encrypt as u8);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    let header = [out[0], out[1], out[2], out[3], out[4]];
    encrypt_payload(
        version,
        key,
        msg,
        &stream_aad(&header, label),
        nonces,
        &mut out,
    );
    Ok(out)
}

/// Decrypts a frame cut by
/// [`crate::wire::encrypt::split_encrypted_stream`] with `label` as the
/// stream label; returns the stream message inside.
///
/// # Errors
/// See [`DecryptError`].
pub fn open_stream_frame(
    keyring: &Keyring,
    frame: &EncryptedStreamFrame<'_>,
    label: &str,
) -> Result<Vec<u8>, DecryptError> {
    decrypt_payload(
        keyring.keys(),
        frame.payload,
        &stream_aad(&frame.header, label),
    )
}
