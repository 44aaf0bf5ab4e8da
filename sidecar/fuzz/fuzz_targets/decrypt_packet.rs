//! A received, encrypted UDP packet body (label already removed): keyring
//! decryption, then packet decoding. Must never panic.
//!
//! The first input byte picks a mode. Even: the rest is a packet body as it
//! arrives, opened with a fixed two-key ring under one of two labels (the
//! fuzzer cannot forge a tag, so this explores the length, version and
//! padding checks). Odd: the rest is a plaintext, sealed with the ring's
//! key, optionally altered at one byte, and opened again: unaltered it
//! must come back exactly and decode without panicking; altered it must
//! be refused (except a switch between versions 0 and 1, which memberlist
//! does not authenticate).
#![no_main]

use gossamer_core::keyring::{EncryptionVersion, Key, Keyring, NonceRng};
use gossamer_core::wire::decode_packet;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fn ring() -> Keyring {
    Keyring::new([
        Key::new(&[0x42; 32]).expect("32-byte key"),
        Key::new(&[0x17; 16]).expect("16-byte key"),
    ])
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let r = ring();
    let label: &[u8] = if mode & 2 == 0 { b"" } else { b"ns/default" };
    if mode & 1 == 0 {
        if let Ok(plain) = r.decrypt(rest, label) {
            let _ = decode_packet(&plain);
        }
        return;
    }
    let version = if mode & 4 == 0 {
        EncryptionVersion::Unpadded
    } else {
        EncryptionVersion::Padded
    };
    let mut sealed = Vec::new();
    let mut nonces = NonceRng::seed_from_u64(u64::from(mode));
    r.encrypt(version, rest, label, &mut nonces, &mut sealed)
        .expect("the ring has a primary key");
    assert_eq!(sealed.len(), version.encrypted_len(rest.len()));
    let plain = r.decrypt(&sealed, label).expect("own ciphertext opens");
    assert_eq!(plain, rest);
    let _ = decode_packet(&plain);
    if mode & 8 != 0 && !sealed.is_empty() {
        let at = usize::from(mode >> 4) * sealed.len() / 16;
        sealed[at] ^= 0x01 | (mode & 0xf0);
        let opened = r.decrypt(&sealed, label);
        if at > 0 {
            assert!(opened.is_err(), "altered byte {at} was not detected");
        }
    }
});
