//! The keyring: an ordered set of keys whose first is the primary.

use std::fmt;
use std::sync::Arc;

use rand::CryptoRng;

use super::seal::{decrypt_payload, encrypt_payload, DecryptError, EncryptionVersion};
use super::{Fingerprint, Key};

/// Why a keyring change was refused. Keys are named by fingerprint only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// The keyring has no key (to encrypt with, or to make primary).
    #[error("the keyring is empty: add a key first")]
    Empty,
    /// The key asked for is not installed.
    #[error("key {0} is not in the keyring: add it first (add_key), then make it primary")]
    NotInstalled(Fingerprint),
    /// Removing the primary key was asked for.
    #[error("key {0} is the primary key and cannot be removed: make another key primary first (use_key), then remove it")]
    RemovePrimary(Fingerprint),
}

/// An ordered set of distinct keys; the first is the primary, which
/// encrypts, and every key is tried to decrypt (the primary first).
///
/// Semantics are memberlist's `Keyring` (and NetworkDB's `SetKey`,
/// `SetPrimaryKey`, `RemoveKey`): adding an installed key changes nothing,
/// the first key added to an empty ring becomes primary, and the primary
/// cannot be removed. Cheap to clone: clones share the keys until one of
/// them changes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: Arc<Vec<Key>>,
}

impl Keyring {
    /// A keyring of `keys`, the first primary; duplicates are dropped.
    pub fn new(keys: impl IntoIterator<Item = Key>) -> Self {
        let mut ring = Keyring::default();
        for k in keys {
            ring.add(k);
        }
        ring
    }

    /// True when there is no key: encryption is off.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key that encrypts, if any.
    pub fn primary(&self) -> Option<&Key> {
        self.keys.first()
    }

    /// All keys, primary first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Whether `key` is installed.
    pub fn contains(&self, key: &Key) -> bool {
        self.keys.contains(key)
    }

    /// Fingerprints of all keys, primary first.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        self.keys.iter().map(Key::fingerprint).collect()
    }

    /// Installs `key` for decryption; into an empty ring it also becomes
    /// the primary. Returns false if it was already installed (no change).
    pub fn add(&mut self, key: Key) -> bool {
        if self.contains(&key) {
            return false;
        }
        Arc::make_mut(&mut self.keys).push(key);
        true
    }

    /// Makes the installed `key` the primary; the others keep their order.
    ///
    /// # Errors
    /// [`KeyringError::NotInstalled`] if it is not installed: add it first.
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyringError> {
        let i = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or_else(|| KeyringError::NotInstalled(key.fingerprint()))?;
        if i != 0 {
            let keys = Arc::make_mut(&mut self.keys);
            let k = keys.remove(i);
            keys.insert(0, k);
        }
        Ok(())
    }

    /// Removes `key`; returns false if it was not installed (no change).
    ///
    /// # Errors
    /// [`KeyringError::RemovePrimary`] if it is the primary.
    pub fn remove(&mut self, key: &Key) -> Result<bool, KeyringError> {
        if self.primary() == Some(key) {
            return Err(KeyringError::RemovePrimary(key.fingerprint()));
        }
        match self.keys.iter().position(|k| k == key) {
            Some(i) => {
                Arc::make_mut(&mut self.keys).remove(i);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Encrypts `msg` with the primary key (see [`encrypt_payload`]),
    /// appending to `dst`.
    ///
    /// # Errors
    /// [`KeyringError::Empty`] without keys.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        version: EncryptionVersion,
        msg: &[u8],
        aad: &[u8],
        nonces: &mut R,
        dst: &mut Vec<u8>,
    ) -> Result<(), KeyringError> {
        let key = self.primary().ok_or(KeyringError::Empty)?;
        encrypt_payload(version, key, msg, aad, nonces, dst);
        Ok(())
    }

    /// Decrypts with every key in turn (see [`decrypt_payload`]).
    ///
    /// # Errors
    /// See [`DecryptError`].
    pub fn decrypt(&self, msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, DecryptError> {
        decrypt_payload(&self.keys, msg, aad)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.fingerprints())
            .finish()
    }
}
