//! Golden vectors for encryption from the Go tool in tests/interop/golden
//! (`golden encrypt`), which seals memberlist's layouts with Go's
//! crypto/aes and crypto/cipher, using nonces derived from each case's
//! name. Its output is committed as `tests/interop/golden/crypt-vectors.json`;
//! this test reads only that file, so it needs no Go toolchain.
//!
//! Checked here: (a) Go's packets and stream frames, versions 0 and 1,
//! AES-128/192/256, with and without a label, decrypt in Rust to the
//! expected message; (b) Rust, given the same nonce, writes the same bytes;
//! (c) a wrong key or label fails in Rust. The e2e tier
//! (`tests/e2e/golden_vectors.rs`) checks that the Go tool still writes the
//! committed file, and that Rust's output with random nonces opens in Go.

#[path = "golden/crypt.rs"]
mod crypt;

use std::path::Path;
use std::sync::OnceLock;

use crypt::{bytes, key_of, rust_decrypt, rust_encrypt, FixedNonce};
use gossamer_core::keyring::{Key, NonceRng};
use gossamer_core::wire::{decode_packet, decode_stream};
use rand::SeedableRng;
use serde_json::{json, Value};

/// The committed vectors.
fn go_vectors() -> &'static Vec<Value> {
    static V: OnceLock<Vec<Value>> = OnceLock::new();
    V.get_or_init(|| {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(crypt::VECTORS);
        let json = std::fs::read(&file).unwrap_or_else(|e| {
            panic!(
                "cannot read the committed encryption vectors {}: {e}; regenerate them with `{}`",
                file.display(),
                crypt::REGENERATE
            )
        });
        crypt::parse(&json)
    })
}

#[test]
fn go_ciphertext_decrypts_in_rust_to_a_decodable_message() {
    for v in go_vectors() {
        let plain = rust_decrypt(v, &key_of(v)).unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
        assert_eq!(plain, bytes(v, "plain"), "{}", v["name"]);
        let name = v["name"].as_str().unwrap();
        if v["kind"] == "packet" {
            if name != "packet-v0-block-aligned" {
                assert!(decode_packet(&plain).is_ok(), "{name}");
            }
        } else {
            assert!(decode_stream(&plain).unwrap().is_some(), "{name}");
        }
    }
}

#[test]
fn rust_writes_go_identical_bytes_given_the_same_nonce() {
    for v in go_vectors() {
        let mut rng = FixedNonce(bytes(v, "nonce"));
        assert_eq!(
            hex::encode(rust_encrypt(v, &mut rng)),
            v["hex"].as_str().unwrap(),
            "{}",
            v["name"]
        );
    }
}

#[test]
fn rust_ciphertext_with_random_nonces_opens_in_rust() {
    // Opening in Go is checked by the e2e tier; here the nonce really is
    // drawn from the RNG (the bytes differ from Go's) and the result opens.
    let mut rng = NonceRng::seed_from_u64(99);
    for v in go_vectors() {
        let mut w = v.clone();
        w["hex"] = json!(hex::encode(rust_encrypt(v, &mut rng)));
        assert_ne!(
            w["hex"], v["hex"],
            "{}: a fresh nonce changes the bytes",
            v["name"]
        );
        let plain = rust_decrypt(&w, &key_of(v)).unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
        assert_eq!(plain, bytes(v, "plain"), "{}", v["name"]);
    }
}

#[test]
fn wrong_keys_and_labels_fail_in_rust() {
    let v = go_vectors()
        .iter()
        .find(|v| v["name"] == "packet-v1-aes256-labeltrue")
        .unwrap();
    let wrong = Key::new(&[0x11; 32]).unwrap();
    assert!(rust_decrypt(v, &wrong)
        .unwrap_err()
        .contains("no installed key"));
    let mut relabelled = v.clone();
    relabelled["label"] = json!("other/cluster");
    assert!(rust_decrypt(&relabelled, &key_of(v)).is_err());
}
