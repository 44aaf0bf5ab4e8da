//! One AES-GCM key: validated bytes, a ready cipher, and a fingerprint that
//! is the only thing about the key ever shown.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce, Tag};
use sha2::{Digest, Sha256};

/// Hex characters of the SHA-256 digest shown in a fingerprint.
const FINGERPRINT_HEX_CHARS: usize = 8;

/// Why bytes or text are not a key. The texts give lengths, never bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 16, 24 or 32 bytes.
    #[error(
        "a key must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256); this one is {0} bytes"
    )]
    Length(usize),
    /// Text that is not hex.
    #[error(
        "a key given as text must be hex of 16, 24 or 32 bytes (32, 48 or 64 hex digits); this text of {0} characters is not hex"
    )]
    NotHex(usize),
}

/// A short, stable name for a key: `sha256:` and the first 8 hex digits of
/// the SHA-256 of its bytes. It tells keys apart in logs, events and
/// status without revealing them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; FINGERPRINT_HEX_CHARS / 2]);

impl Fingerprint {
    fn of(bytes: &[u8]) -> Self {
        let d = Sha256::digest(bytes);
        let mut f = [0u8; FINGERPRINT_HEX_CHARS / 2];
        f.copy_from_slice(&d[..FINGERPRINT_HEX_CHARS / 2]);
        Fingerprint(f)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The cipher for each key size.
enum Cipher {
    Aes128(Aes128Gcm),
    Aes192(AesGcm<Aes192, U12>),
    Aes256(Aes256Gcm),
}

struct Inner {
    bytes: Vec<u8>,
    cipher: Cipher,
    fingerprint: Fingerprint,
}

/// An AES-GCM key of 16, 24 or 32 bytes, with its cipher ready (the key
/// schedule is computed once). Cheap to clone.
///
/// `Debug` and `Display` show the fingerprint and size only: the bytes
/// cannot reach a log through this type.
#[derive(Clone)]
pub struct Key(Arc<Inner>);

impl Key {
    /// A key from raw bytes.
    ///
    /// # Errors
    /// [`KeyError::Length`] unless there are 16, 24 or 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<Key, KeyError> {
        let cipher = match bytes.len() {
            16 => {
                Cipher::Aes128(Aes128Gcm::new_from_slice(bytes).map_err(|_| KeyError::Length(16))?)
            }
            24 => Cipher::Aes192(
                AesGcm::<Aes192, U12>::new_from_slice(bytes).map_err(|_| KeyError::Length(24))?,
            ),
            32 => {
                Cipher::Aes256(Aes256Gcm::new_from_slice(bytes).map_err(|_| KeyError::Length(32))?)
            }
            n => return Err(KeyError::Length(n)),
        };
        Ok(Key(Arc::new(Inner {
            bytes: bytes.to_vec(),
            cipher,
            fingerprint: Fingerprint::of(bytes),
        })))
    }

    /// A key from hex text (either case; surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`KeyError::NotHex`] for text that is not hex (the error never
    /// quotes it), [`KeyError::Length`] for a wrong size.
    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let t = text.trim();
        let bytes = hex::decode(t).map_err(|_| KeyError::NotHex(t.chars().count()))?;
        Key::new(&bytes)
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.0.fingerprint
    }

    /// Key size in bytes: 16, 24 or 32.
    pub fn len(&self) -> usize {
        self.0.bytes.len()
    }

    /// Always false: a key has 16 bytes or more.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The raw key bytes. Only for handing the key to another keyring
    /// (e.g. a Go peer's): never log, print or format them.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// Seals `buf` in place; returns the tag.
    pub(super) fn seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let n = Nonce::<U12>::from_slice(nonce);
        // Encryption fails only for inputs over GCM's 64 GiB limit, far
        // beyond any memberlist message.
        let tag = match &self.0.cipher {
            Cipher::Aes128(c) => c.encrypt_in_place_detached(n, aad, buf),
            Cipher::Aes192(c) => c.encrypt_in_place_detached(n, aad, buf),
            Cipher::Aes256(c) => c.encrypt_in_place_detached(n, aad, buf),
        }
        .unwrap_or_default();
        tag.into()
    }

    /// Opens `buf` in place. On failure `buf` is left unchanged (the tag is
    /// checked before anything is decrypted), so the next key can be tried.
    pub(super) fn open_in_place(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> bool {
        let n = Nonce::<U12>::from_slice(nonce);
        let t = Tag::from_slice(tag);
        match &self.0.cipher {
            Cipher::Aes128(c) => c.decrypt_in_place_detached(n, aad, buf, t),
            Cipher::Aes192(c) => c.decrypt_in_place_detached(n, aad, buf, t),
            Cipher::Aes256(c) => c.decrypt_in_place_detached(n, aad, buf, t),
        }
        .is_ok()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.0.bytes == other.0.bytes
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({}, {} bytes)",
            self.0.fingerprint,
            self.0.bytes.len()
        )
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.fingerprint, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        for n in [16, 24, 32] {
            assert_eq!(Key::new(&vec![7; n]).unwrap().len(), n);
        }
        for n in [0, 1, 15, 17, 31, 33, 64] {
            assert_eq!(Key::new(&vec![7; n]).unwrap_err(), KeyError::Length(n));
        }
    }

    #[test]
    fn hex_parsing_never_quotes_the_text() {
        let k = Key::from_hex(" 000102030405060708090A0B0C0D0E0F\n").unwrap();
        assert_eq!(k.expose_bytes(), (0u8..16).collect::<Vec<_>>());
        let bad = "zz0102030405060708090a0b0c0d0e0f";
        let e = Key::from_hex(bad).unwrap_err();
        assert_eq!(e, KeyError::NotHex(32));
        assert!(!e.to_string().contains(bad));
        assert_eq!(Key::from_hex("0001").unwrap_err(), KeyError::Length(2));
    }

    #[test]
    fn fingerprint_is_a_sha256_prefix() {
        // SHA-256 of sixteen zero bytes starts 374708ff.
        let k = Key::new(&[0; 16]).unwrap();
        assert_eq!(k.fingerprint().to_string(), "sha256:374708ff");
        assert_eq!(format!("{k}"), "sha256:374708ff");
        assert_eq!(format!("{k:?}"), "Key(sha256:374708ff, 16 bytes)");
    }
}
