//! A TCP stream: label header, then incremental stream decoding. Must
//! never panic, and a shorter prefix must never decode to more.
#![no_main]

use gossamer_core::wire::{decode_stream, encode_stream, split_stream_label};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((_label, start))) = split_stream_label(data) else {
        return;
    };
    let body = &data[start..];
    if let Ok(Some((msg, used))) = decode_stream(body) {
        assert!(used <= body.len());
        // Re-encoding is canonical: decoding it again gives the same value.
        let again = encode_stream(&msg, false);
        let (back, n) = decode_stream(&again).expect("re-decode").expect("complete");
        assert_eq!(back, msg);
        assert_eq!(n, again.len());
        // Any strict prefix of a message that decodes is incomplete or bad,
        // never a different complete message.
        if used > 0 {
            if let Ok(Some((_, m))) = decode_stream(&body[..used - 1]) {
                panic!("prefix of {} bytes decoded using {m}", used - 1);
            }
        }
    }
});
