//! A NetworkDB message as a peer sends it (memberlist user message or
//! push/pull state): the codec and the tables core must never panic, and
//! whatever they accept must leave the core usable.
#![no_main]

use std::time::Instant;

use gossamer_core::tables::{codec, Config, Tables};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode(data);
    let now = Instant::now();
    let Ok(mut t) = Tables::new(Config::new("fuzz-node"), 1, now) else {
        return;
    };
    let _ = t.join_network("n1", now);
    t.member_joined("peer", "127.0.0.1:7946".parse().unwrap(), now);
    let _ = t.handle_message("peer", data, now);
    let _ = t.merge_remote_state(data, false, now);
    let _ = t.merge_remote_state(data, true, now);
    // Still usable: timers run and stats read.
    t.handle_timeout(now + std::time::Duration::from_secs(60));
    while t.poll_output().is_some() {}
    let _ = t.stats();
});
