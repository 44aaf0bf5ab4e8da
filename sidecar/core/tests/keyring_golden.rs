//! Golden vectors for encryption, shared with the Go tool in
//! tests/interop/golden (`golden encrypt` / `golden decrypt`), which seals
//! and opens memberlist's layouts with Go's crypto/aes and crypto/cipher.
//!
//! (a) Go's packets and stream frames, versions 0 and 1, AES-128/192/256,
//! with and without a label, decrypt in Rust to the expected message;
//! (b) Rust, given the same nonce, writes the same bytes; (c) Rust's output
//! with random nonces opens in Go. A missing `go` toolchain fails the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use gossamer_core::keyring::{
    decrypt_payload, encrypt_payload, open_stream_frame, seal_stream_frame, EncryptionVersion, Key,
    Keyring, NonceRng,
};
use gossamer_core::wire::encrypt::split_encrypted_stream;
use gossamer_core::wire::{decode_packet, decode_stream};
use rand::SeedableRng;
use serde_json::{json, Value};

fn golden_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/golden");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gossamer-golden-crypt");
        let res = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(&dir)
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .output();
        match res {
            Err(e) => panic!(
                "cannot run `go` to build the golden tool in {}: {e}. Install Go (1.25 or later); the encryption golden tests need it.",
                dir.display()
            ),
            Ok(o) if !o.status.success() => panic!(
                "`go build` of the golden tool failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Ok(_) => out,
        }
    })
}

fn go_vectors() -> &'static Vec<Value> {
    static V: OnceLock<Vec<Value>> = OnceLock::new();
    V.get_or_init(|| {
        let o = Command::new(golden_bin())
            .arg("encrypt")
            .output()
            .expect("run golden encrypt");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Vec<Value> = serde_json::from_slice(&o.stdout).expect("JSON");
        assert!(v.len() >= 26, "expected every case, got {}", v.len());
        v
    })
}

fn go_decrypt(vectors: &[Value]) -> Vec<Value> {
    let mut child = Command::new(golden_bin())
        .arg("decrypt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run golden decrypt");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(vectors).unwrap().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    serde_json::from_slice(&o.stdout).unwrap()
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

fn key_of(v: &Value) -> Key {
    Key::new(&bytes(v, "key")).unwrap()
}

fn version_of(v: &Value) -> EncryptionVersion {
    match v["version"].as_u64().unwrap() {
        0 => EncryptionVersion::Padded,
        _ => EncryptionVersion::Unpadded,
    }
}

/// Replays a fixed nonce: pins Rust's ciphertext to Go's.
struct FixedNonce(Vec<u8>);

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

fn rust_decrypt(v: &Value, key: &Key) -> Result<Vec<u8>, String> {
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

fn rust_encrypt(v: &Value, rng: &mut dyn rand::CryptoRng) -> Vec<u8> {
    let (key, plain, label) = (key_of(v), bytes(v, "plain"), v["label"].as_str().unwrap());
    if v["kind"] == "packet" {
        let mut out = Vec::new();
        encrypt_payload(version_of(v), &key, &plain, label.as_bytes(), rng, &mut out);
        out
    } else {
        seal_stream_frame(&Keyring::new([key]), version_of(v), &plain, label, rng).unwrap()
    }
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
fn rust_ciphertext_with_random_nonces_opens_in_go() {
    let mut rng = NonceRng::seed_from_u64(99);
    let mine: Vec<Value> = go_vectors()
        .iter()
        .map(|v| {
            let mut w = v.clone();
            w["hex"] = json!(hex::encode(rust_encrypt(v, &mut rng)));
            assert_ne!(w["hex"], v["hex"], "a fresh nonce changes the bytes");
            w
        })
        .collect();
    let out = go_decrypt(&mine);
    assert_eq!(out.len(), mine.len());
    for (v, r) in mine.iter().zip(&out) {
        assert_eq!(r["name"], v["name"]);
        assert_eq!(
            r["error"],
            Value::Null,
            "{}: Go could not open Rust's bytes",
            v["name"]
        );
        assert_eq!(r["plain"], v["plain"], "{}", v["name"]);
    }
}

#[test]
fn wrong_keys_and_labels_fail_on_both_sides() {
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
    let mut wrong_key = v.clone();
    wrong_key["key"] = json!(hex::encode([0x11; 32]));
    let out = go_decrypt(&[wrong_key, relabelled]);
    assert!(out.iter().all(|r| r["error"].is_string()), "{out:?}");
}
