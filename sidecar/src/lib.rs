//! Gossamer's gossip node: the shell around [`gossamer_core`].
//!
//! The engine — [`wire`], [`keyring`], [`membership`], [`tables`], [`node`]
//! and the simulator [`sim`] — lives in the `gossamer-core` crate, pure and
//! sans-IO: it takes packets, stream messages, commands and the current
//! time, and returns packets to send, streams to open and events. It is
//! re-exported here under its old paths. This crate is the tokio shell that
//! carries those outputs out: sockets and timers ([`runtime`]), the local
//! gRPC table API ([`api`]), the JSON-lines control protocol ([`stdio`]),
//! Prometheus metrics ([`metrics`]) and the configuration file
//! ([`settings`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use gossamer_core::{desired, infos, keyring, membership, node, sim, tables, wire};

pub mod api;
pub mod control;
pub mod join;
pub mod metrics;
pub mod runtime;
pub mod settings;
pub mod stdio;
