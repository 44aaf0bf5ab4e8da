//! Gossamer's protobuf messages, generated with prost from the `.proto` files
//! beside this crate.
//!
//! - [`tables::v1`]: the local table API (`gossamer/tables/v1/tables.proto`),
//!   with tonic server and client.
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

/// The local table API (package `gossamer.tables.v1`): the service an
/// application in the pod calls on its sidecar, with its tonic server and
/// client.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod tables {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/gossamer.tables.v1.rs"));
    }
}
