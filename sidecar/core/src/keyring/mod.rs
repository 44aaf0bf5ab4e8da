//! The AES-GCM keyring and memberlist's encryption layouts, pure.
//!
//! * [`Key`]: 16, 24 or 32 bytes (AES-128/192/256), shown only as its
//!   [`Fingerprint`] (`sha256:` and 8 hex digits of its SHA-256).
//! * [`Keyring`]: primary first; the primary encrypts, every key decrypts.
//! * [`encrypt_payload`]/[`decrypt_payload`]: memberlist's
//!   `[version][nonce 12][ciphertext][tag 16]`, version 1 unpadded (written
//!   on protocol 2 and up) and version 0 PKCS#7-padded (read).
//! * [`seal_stream_frame`]/[`open_stream_frame`]: the encrypted stream
//!   frame `[10][length][payload]` with `[10][length] ++ label` as
//!   additional data.
//!
//! Nonces are random: the caller passes the RNG, which in production MUST
//! be a CSPRNG seeded from OS entropy (the shell seeds a [`NonceRng`] with
//! `from_os_rng`); tests may pass a seeded one. Nothing here reads a clock
//! or a global RNG. Key bytes never appear in any `Debug`, `Display` or
//! error text of this module.

mod key;
mod ring;
mod seal;

pub use key::{Fingerprint, Key, KeyError};
pub use ring::{Keyring, KeyringError};
pub use seal::{
    decrypt_payload, encrypt_payload, open_stream_frame, seal_stream_frame, DecryptError,
    EncryptionVersion,
};

/// The RNG nonces come from: ChaCha-based and cryptographically secure.
pub type NonceRng = rand::rngs::StdRng;

#[cfg(test)]
mod tests;
