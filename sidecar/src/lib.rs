//! Gossamer's gossip node: SWIM membership with Lifeguard, wire-compatible
//! with hashicorp/memberlist.
//!
//! The protocol core ([`membership`], [`wire`]) is pure: it takes packets,
//! stream messages, commands and the current time, and returns packets to
//! send, streams to open and events. The tokio shell lives in `runtime`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod keyring;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod runtime;
pub mod settings;
pub mod sim;
pub mod stdio;
pub mod tables;
pub mod wire;
