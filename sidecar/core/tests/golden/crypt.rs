//! Encryption helpers shared by the core's golden test
//! (`sidecar/core/tests/keyring_golden.rs`, Go's committed ciphertext
//! against Rust) and the e2e tier (`tests/e2e/golden_vectors.rs`, Rust's
//! ciphertext against the Go tool in tests/interop/golden).
//!
//! A vector is the JSON object `golden encrypt` prints: name, kind
//! (`packet` or `stream`), version, key, label, nonce, plain and hex (the
//! sealed bytes).
// Each including test crate uses a different part of this module.
#![allow(dead_code)]

use gossamer_core::keyring::{
    decrypt_payload, encrypt_payload, open_stream_frame, seal_stream_frame, EncryptionVersion, Key,
    Keyring,
};
use gossamer_core::wire::encrypt::split_encrypted_stream;
use serde_json::Value;

/// The committed output of `golden encrypt`, relative to the workspace root.
pub const VECTORS: &str = "tests/interop/golden/crypt-vectors.json";

/// How to regenerate [`VECTORS`] (from the workspace root).
pub const REGENERATE: &str = "cd tests/interop/golden && go run . encrypt > crypt-vectors.json";

/// The number of cases the Go tool writes: versions 0 and 1, three key
/// sizes, with and without a label, packet and stream, and two edge cases.
pub const CASES: usize = 2 * 3 * 2 * 2 + 2;

/// Parses the tool's `encrypt` output (or the committed file).
///
/// # Panics
/// If `json` is not a list of every case.
pub fn parse(json: &[u8]) -> Vec<Value> {
    let v: Vec<Value> = serde_json::from_slice(json).expect("encryption vectors are a JSON list");
    assert_eq!(v.len(), CASES, "expected every encryption case");
    v
}

/// The bytes of hex field `field` of vector `v`.
pub fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

pub fn key_of(v: &Value) -> Key {
    Key::new(&bytes(v, "key")).unwrap()
}

pub fn version_of(v: &Value) -> EncryptionVersion {
    match v["version"].as_u64().unwrap() {
        0 => EncryptionVersion::Padded,
        _ => EncryptionVersion::Unpadded,
    }
}

/// Replays a fixed nonce: pins Rust's ciphertext to Go's.
pub struct FixedNonce(pub Vec<u8>);

impl rand::RngCore for FixedNonce {
    fn next_u32(&mut self) -> u32 {
        unreachable!("only fill_bytes draws nonces")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("only fill_bytes draws nonces")
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.copy_from_slice(&self.0);
    }
}

impl rand::CryptoRng for FixedNonce {}

/// Opens vector `v`'s sealed bytes in Rust with `key` and `v`'s label.
pub fn rust_decrypt(v: &Value, key: &Key) -> Result<Vec<u8>, String> {
    let label = v["label"].as_str().unwrap();
    let enc = bytes(v, "hex");
    if v["kind"] == "packet" {
        decrypt_payload(std::slice::from_ref(key), &enc, label.as_bytes())
            .map_err(|e| e.to_string())
    } else {
        let frame = split_encrypted_stream(&enc)
            .map_err(|e| e.to_string())?
            .ok_or("incomplete frame")?;
        assert_eq!(frame.consumed, enc.len());
        open_stream_frame(&Keyring::new([key.clone()]), &frame, label).map_err(|e| e.to_string())
    }
}

/// Seals vector `v`'s plaintext in Rust, drawing the nonce from `rng`.
pub fn rust_encrypt(v: &Value, rng: &mut dyn rand::CryptoRng) -> Vec<u8> {
    let (key, plain, label) = (key_of(v), bytes(v, "plain"), v["label"].as_str().unwrap());
    if v["kind"] == "packet" {
        let mut out = Vec::new();
        encrypt_payload(version_of(v), &key, &plain, label.as_bytes(), rng, &mut out);
        out
    } else {
        seal_stream_frame(&Keyring::new([key]), version_of(v), &plain, label, rng).unwrap()
    }
}
