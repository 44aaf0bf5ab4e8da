//! Between the tables core and the API's messages: errors to gRPC statuses,
//! entries, batches and health.

use std::time::Instant;

use gossamer_proto::tables::v1 as pb;
use tonic::Status;

use crate::tables::{EntryView, Stats, Tables, TablesError};

/// The gRPC status of a tables error; the message is the error's own text,
/// which names the offending value (and, for sizes, the limit).
pub fn status(e: TablesError) -> Status {
    let msg = e.to_string();
    match e {
        TablesError::EmptyName(_) | TablesError::TooLarge { .. } => Status::invalid_argument(msg),
        TablesError::NotJoined(_) => Status::failed_precondition(msg),
        TablesError::AlreadyJoined(_) | TablesError::AlreadyExists { .. } => {
            Status::already_exists(msg)
        }
        TablesError::NotFound { .. } => Status::not_found(msg),
    }
}

pub(super) fn entry(network: &str, table: &str, key: &str, e: EntryView) -> pb::Entry {
    pb::Entry {
        network: network.to_string(),
        table: table.to_string(),
        key: key.to_string(),
        value: e.value,
        owner: e.owner,
        ltime: e.ltime,
    }
}

/// Applies a batch in order; returns the failures by position in it.
pub(super) fn apply_batch(
    t: &mut Tables,
    batch: pb::WriteBatch,
    now: Instant,
) -> Vec<(usize, TablesError)> {
    use pb::write::Op;
    let mut failures = Vec::new();
    for (i, w) in batch.writes.into_iter().enumerate() {
        let r = match Op::try_from(w.op) {
            Ok(Op::Create) => t.create_entry(&w.network, &w.table, &w.key, w.value, now),
            Ok(Op::Update) => t.update_entry(&w.network, &w.table, &w.key, w.value, now),
            Ok(Op::Delete) => t.delete_entry(&w.network, &w.table, &w.key, now),
            Ok(Op::Upsert) => {
                if t.get_entry(&w.network, &w.table, &w.key).is_some() {
                    t.update_entry(&w.network, &w.table, &w.key, w.value, now)
                } else {
                    t.create_entry(&w.network, &w.table, &w.key, w.value, now)
                }
            }
            Ok(Op::Unspecified) | Err(_) => Err(TablesError::EmptyName("write op")),
        };
        if let Err(e) = r {
            failures.push((i, e));
        }
    }
    failures
}

pub(super) fn health(node: &str, score: usize, alive: usize, s: Stats) -> pb::HealthResponse {
    pb::HealthResponse {
        node: node.to_string(),
        health_score: u32::try_from(score).unwrap_or(u32::MAX),
        members_alive: u32::try_from(alive).unwrap_or(u32::MAX),
        networks: s
            .networks
            .into_iter()
            .map(|(network, n)| pb::NetworkHealth {
                network,
                entries: n.entries as u64,
                tombstones: n.tombstones as u64,
                hidden: n.hidden as u64,
                peers: n.peers as u64,
                queued: (n.queued + n.queued_relays) as u64,
                in_sync: n.in_sync,
            })
            .collect(),
    }
}
