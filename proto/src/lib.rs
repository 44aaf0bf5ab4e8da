//! Gossamer's protobuf messages, generated with prost from the `.proto` files
//! beside this crate.
//!
//! - [`networkdb`]: the gossip table messages of libnetwork's NetworkDB
//!   (`networkdb/networkdb.proto`), with the same message names, field
//!   numbers and types, so their encoding is byte-identical to the Go
//!   package's gogo/protobuf output (checked by golden vectors produced by
//!   the real Go package, `sidecar/tests/tables_golden.rs`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// libnetwork NetworkDB gossip messages (package `networkdb`).
///
/// Every message travels wrapped in a [`networkdb::GossipMessage`] whose
/// `type` says how to decode `data`; a compound message is a
/// [`networkdb::CompoundMessage`] of such wrapped messages.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod networkdb {
    include!(concat!(env!("OUT_DIR"), "/networkdb.rs"));
}
