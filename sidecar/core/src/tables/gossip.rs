//! Dissemination: table events gossiped per network, and network and node
//! events handed to memberlist's gossip.

use std::time::Instant;

use super::codec::{self, COMPOUND_HEADER_OVERHEAD, COMPOUND_PART_OVERHEAD};
use super::Tables;
use crate::membership::retransmit_limit;

/// Eager pushes per table event, a batching window apart: one round of
/// `gossip_fanout` sends misses about `e^-3` of the members, two about
/// `e^-6`.
const EAGER_ROUNDS: usize = 2;

impl Tables {
    /// Network and node events to piggyback on memberlist's gossip, within
    /// `limit` bytes counting `overhead` per message (memberlist's
    /// `GetBroadcasts` delegate hook). Network events go first.
    pub fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let n = self.peers.count(super::peers::NodeState::Active);
        let transmits = retransmit_limit(self.cfg.retransmit_mult, n);
        let mut out = self.network_broadcasts.take(overhead, limit, transmits);
        let used: usize = out.iter().map(|m| m.len() + overhead).sum();
        if used < limit {
            out.extend(self.node_broadcasts.take(overhead, limit - used, transmits));
        }
        out
    }

    /// One gossip round: for every network, own table events first, then
    /// relays, packed in one compound within the packet budget, sent
    /// best-effort to up to `gossip_fanout` random peers. A network without
    /// peers keeps its queue (libnetwork drains it into the void).
    pub(super) fn gossip(&mut self) {
        let me = self.cfg.node_name.clone();
        let nets: Vec<String> = self.local.keys().cloned().collect();
        for nid in nets {
            let others = self.peers.others(&nid, &me);
            if others.is_empty() {
                continue;
            }
            let members = self.peers.network_nodes.get(&nid).map_or(1, |s| s.len());
            let transmits = retransmit_limit(self.cfg.retransmit_mult, members);
            let budget = self.cfg.packet_budget - COMPOUND_HEADER_OVERHEAD;
            let Some(n) = self.local.get_mut(&nid) else {
                continue;
            };
            let mut msgs = n.broadcasts.take(COMPOUND_PART_OVERHEAD, budget, transmits);
            let used: usize = msgs.iter().map(|m| m.len() + COMPOUND_PART_OVERHEAD).sum();
            if used < budget {
                msgs.extend(
                    n.relays
                        .take(COMPOUND_PART_OVERHEAD, budget - used, transmits),
                );
            }
            if msgs.is_empty() {
                continue;
            }
            n.messages_sent += msgs.len() as u64;
            let compound = codec::encode_compound(&msgs);
            debug_assert!(compound.len() <= self.cfg.packet_budget);
            let targets = self.random_nodes(self.cfg.gossip_fanout, others);
            for to in targets {
                self.send(&to, compound.clone(), false);
            }
        }
    }

    /// Asks for an eager push after the batching window, unless one is
    /// already due sooner (see [`super::Config::eager_push`]).
    pub(super) fn arm_eager(&mut self, now: Instant) {
        if let Some(delay) = self.cfg.eager_push {
            if self.timers.eager.is_none() {
                self.timers.eager = Some(now + delay);
            }
        }
    }

    /// The eager push: for every network, the events sent fewer than
    /// [`EAGER_ROUNDS`] times (own first, then relays), one compound within
    /// the packet budget, to `gossip_fanout` random peers. It counts as one
    /// of their transmits (the gossip rounds send the rest), so the bytes
    /// are those of the gossip rounds, only sent sooner. What did not fit,
    /// and the second round, wait for the next window: a heavy write load
    /// fills whole compounds at most once per window and network rather
    /// than sending each event alone.
    pub(super) fn eager_push(&mut self, now: Instant) {
        let me = self.cfg.node_name.clone();
        let nets: Vec<String> = self.local.keys().cloned().collect();
        let mut more = false;
        for nid in nets {
            let others = self.peers.others(&nid, &me);
            if others.is_empty() {
                continue;
            }
            let members = self.peers.network_nodes.get(&nid).map_or(1, |s| s.len());
            let transmits = retransmit_limit(self.cfg.retransmit_mult, members);
            let budget = self.cfg.packet_budget - COMPOUND_HEADER_OVERHEAD;
            let Some(n) = self.local.get_mut(&nid) else {
                continue;
            };
            let mut msgs = n.broadcasts.take_sent_fewer_than(
                EAGER_ROUNDS,
                COMPOUND_PART_OVERHEAD,
                budget,
                transmits,
            );
            let used: usize = msgs.iter().map(|m| m.len() + COMPOUND_PART_OVERHEAD).sum();
            if used < budget {
                msgs.extend(n.relays.take_sent_fewer_than(
                    EAGER_ROUNDS,
                    COMPOUND_PART_OVERHEAD,
                    budget - used,
                    transmits,
                ));
            }
            more |= n.broadcasts.has_sent_fewer_than(EAGER_ROUNDS)
                || n.relays.has_sent_fewer_than(EAGER_ROUNDS);
            if msgs.is_empty() {
                continue;
            }
            n.messages_sent += msgs.len() as u64;
            self.stats.eager_pushes += 1;
            let compound = codec::encode_compound(&msgs);
            debug_assert!(compound.len() <= self.cfg.packet_budget);
            let targets = self.random_nodes(self.cfg.gossip_fanout, others);
            for to in targets {
                self.send(&to, compound.clone(), false);
            }
        }
        if more {
            self.arm_eager(now);
        }
    }
}
