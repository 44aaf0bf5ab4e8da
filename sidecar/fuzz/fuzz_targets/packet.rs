//! A received UDP packet: label header, then CRC/compound/compress
//! unwrapping and message decoding. Must never panic.
#![no_main]

use gossamer_core::wire::{decode_message, decode_packet, split_label_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_label, rest)) = split_label_header(data) {
        if let Ok(msgs) = decode_packet(rest) {
            // Whatever decodes must re-encode and decode to itself.
            for m in msgs.into_iter().flatten() {
                let again = decode_message(&m.to_bytes()).expect("re-decode");
                assert_eq!(again, m);
            }
        }
    }
});
