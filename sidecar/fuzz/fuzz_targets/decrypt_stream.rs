//! The start of an inbound TCP stream to a node with a keyring: label
//! header, encrypted frame (type 10) decryption, then stream decoding, as
//! the sidecar's connection tasks run it. Must never panic.
//!
//! The first input byte picks a mode. Even: the rest is the stream as it
//! arrives (a label header for "ns/default" first, when there is one).
//! Odd: the rest is a user message, sealed into an encrypted frame with the
//! ring's key, then cut at a fuzzer-chosen length: a cut frame must never
//! decode, the whole frame must decode to the same message.
#![no_main]

use gossamer_core::keyring::{seal_stream_frame, EncryptionVersion, Key, Keyring, NonceRng};
use gossamer_core::membership::StreamCodec;
use gossamer_core::wire::{add_label_header, encode_stream, StreamMessage};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

const LABEL: &str = "ns/default";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ring = Keyring::new([
        Key::new(&[0x42; 32]).expect("32-byte key"),
        Key::new(&[0x17; 24]).expect("24-byte key"),
    ]);
    let codec = StreamCodec::new(LABEL, ring.clone(), mode & 2 == 0);
    if mode & 1 == 0 {
        if let Ok(Some((_, used))) = codec.decode(rest, true) {
            assert!(used <= rest.len());
        }
        let _ = codec.decode(rest, false);
        return;
    }
    let msg = StreamMessage::User(rest.to_vec());
    let inner = encode_stream(&msg, mode & 4 != 0);
    let version = if mode & 8 == 0 {
        EncryptionVersion::Unpadded
    } else {
        EncryptionVersion::Padded
    };
    let mut nonces = NonceRng::seed_from_u64(u64::from(mode));
    let frame = seal_stream_frame(&ring, version, &inner, LABEL, &mut nonces).expect("primary key");
    let wire = add_label_header(LABEL, &frame);
    let (back, used) = codec
        .decode(&wire, true)
        .expect("own frame decrypts")
        .expect("complete frame");
    assert_eq!(back, msg);
    assert_eq!(used, wire.len());
    let cut = usize::from(mode >> 4) * wire.len() / 16;
    if let Ok(Some(_)) = codec.decode(&wire[..cut], true) {
        panic!("a frame cut to {cut} of {} bytes decoded", wire.len());
    }
});
