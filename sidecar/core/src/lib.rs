//! Gossamer's engine: SWIM membership with Lifeguard, wire-compatible with
//! hashicorp/memberlist, and NetworkDB's replicated tables, wire-compatible
//! with libnetwork, as pure state machines.
//!
//! - [`wire`]: memberlist's wire format (go-msgpack bodies, compound, CRC,
//!   label, LZW compression, stream messages).
//! - [`keyring`]: the AES-GCM keyring and memberlist's encryption layouts.
//! - [`membership`]: SWIM + Lifeguard (probes, suspicion, dissemination,
//!   push/pull).
//! - [`tables`]: NetworkDB networks and tables (Lamport clocks, tombstones
//!   and reaping, per-network gossip, bulk sync), with libnetwork's
//!   `networkdb.proto` messages in [`tables::proto`].
//! - [`infos`]: cluster-wide infos with TTLs and hop counts, and min/max
//!   groups, as early CockroachDB gossip keeps them.
//! - [`desired`]: the configuration a node should run (from a file or a
//!   control-plane snapshot) and the ordered, idempotent plan to it.
//! - [`node`]: membership and tables composed as production runs them.
//! - [`sim`]: the deterministic simulator, many real nodes in virtual time
//!   on an in-memory network.
//!
//! # The sans-IO contract
//!
//! Every state machine here ([`membership::Membership`], [`tables::Tables`],
//! [`node::Node`]) takes inputs — a received packet or stream message, the
//! outcome of a send or a stream it asked for, the passing of time
//! (`handle_timeout(now)`), an application call — and queues outputs
//! (packets to send, streams to open, events) that the caller drains with
//! `poll_output`; `poll_timeout` says when it next wants `handle_timeout`.
//! What MUST hold for everything in this crate:
//!
//! - **No I/O.** Nothing opens a socket or a file, spawns a task or a
//!   thread, or blocks. Addresses are plain values; the shell
//!   (`gossamer-sidecar`'s runtime) owns the sockets and carries the
//!   outputs out.
//! - **No clock.** Time is an input: every call that depends on it takes
//!   `now` (a [`std::time::Instant`] the caller chose, real or virtual),
//!   and the next deadline is reported as data (`poll_timeout`).
//!   `Instant::now`, `Instant::elapsed`, `SystemTime::now` and sleeping are
//!   banned here by `clippy.toml`, so the simulator can run the same code
//!   in virtual time.
//! - **No global randomness.** Every RNG is seeded by the caller; the same
//!   seed and the same inputs give the same outputs (the simulator's trace
//!   hashes rely on it). Encryption nonces come from an RNG the caller
//!   passes, which in production MUST be seeded from OS entropy.
//! - **No async runtime.** tokio, tonic, hyper and socket crates are not in
//!   this crate's dependency tree; CI fails if one appears
//!   (`tests/run-all.sh`).
//!
//! Bad input from the network never panics and never corrupts state: the
//! decoders return errors, and the fuzz targets in `sidecar/fuzz` hold them
//! to it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod desired;
pub mod infos;
pub mod keyring;
pub mod membership;
pub mod node;
pub mod sim;
pub mod tables;
pub mod wire;
