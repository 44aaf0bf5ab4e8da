//! Dissemination: table events gossiped per network, and network and node
//! events handed to memberlist's gossip.

use std::time::Instant;

use super::codec::{self, COMPOUND_HEADER_OVERHEAD, COMPOUND_PART_OVERHEAD};
use super::Tables;
use crate::membership::{retransmit_limit, BroadcastQueue};

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
            let transmits = self.table_transmits(&nid);
            let budget = self.cfg.packet_budget - COMPOUND_HEADER_OVERHEAD;
            let Some(n) = self.local.get_mut(&nid) else {
                continue;
            };
            let mut msgs = Vec::new();
            fill(&mut msgs, &mut n.broadcasts, budget, transmits);
            fill(&mut msgs, &mut n.relays, budget, transmits);
            if msgs.is_empty() {
                continue;
            }
            n.messages_sent += msgs.len() as u64;
            self.send_compound(&msgs, others);
        }
    }

    /// How many times each table event of network `nid` is sent (each time
    /// to `gossip_fanout` members). libnetwork's limit,
    /// `retransmit_mult * ceil(log10(n + 1))` for the `n` members of the
    /// network, without eager pushes; with them,
    /// `ceil(eager_retransmit_mult * ceil(log10(n + 1)))`, never below
    /// `retransmit_mult` (libnetwork's own limit under 10 members).
    fn table_transmits(&self, nid: &str) -> usize {
        let members = self.peers.network_nodes.get(nid).map_or(1, |s| s.len());
        let libnetwork = retransmit_limit(self.cfg.retransmit_mult, members);
        if self.cfg.eager_push.is_none() {
            return libnetwork;
        }
        let decades = retransmit_limit(1, members) as f64;
        let eager = (self.cfg.eager_retransmit_mult * decades).ceil();
        // Saturating float-to-int: a negative or NaN setting gives 0.
        (eager as usize)
            .max(self.cfg.retransmit_mult)
            .min(libnetwork)
    }

    /// Sends one compound of `msgs` to up to `gossip_fanout` of `others`.
    fn send_compound(&mut self, msgs: &[Vec<u8>], others: Vec<String>) {
        let compound = codec::encode_compound(msgs);
        debug_assert!(compound.len() <= self.cfg.packet_budget);
        let targets = self.random_nodes(self.cfg.gossip_fanout, others);
        for to in targets {
            self.send(&to, compound.clone(), false);
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

    /// The eager push: for every network that has events sent fewer than
    /// [`EAGER_ROUNDS`] times (own first, then relays), one compound to
    /// `gossip_fanout` random peers, with those events first and then,
    /// while the packet budget allows, any other event still due for a
    /// transmit. Every event in it counts one of its transmits, so the
    /// gossip rounds send the rest of the same budget: eager pushes send
    /// the same events sooner, in compounds as full as the queues allow,
    /// rather than extra copies. What did not fit, and the second round,
    /// wait for the next window: a heavy write load fills whole compounds
    /// at most once per window and network rather than sending each event
    /// alone.
    pub(super) fn eager_push(&mut self, now: Instant) {
        let me = self.cfg.node_name.clone();
        let nets: Vec<String> = self.local.keys().cloned().collect();
        let mut more = false;
        for nid in nets {
            let others = self.peers.others(&nid, &me);
            if others.is_empty() {
                continue;
            }
            let transmits = self.table_transmits(&nid);
            let budget = self.cfg.packet_budget - COMPOUND_HEADER_OVERHEAD;
            let Some(n) = self.local.get_mut(&nid) else {
                continue;
            };
            let mut msgs = Vec::new();
            fill_sent_fewer_than(&mut msgs, &mut n.broadcasts, budget, transmits);
            fill_sent_fewer_than(&mut msgs, &mut n.relays, budget, transmits);
            more |= n.broadcasts.has_sent_fewer_than(EAGER_ROUNDS)
                || n.relays.has_sent_fewer_than(EAGER_ROUNDS);
            if msgs.is_empty() {
                continue;
            }
            fill(&mut msgs, &mut n.broadcasts, budget, transmits);
            fill(&mut msgs, &mut n.relays, budget, transmits);
            n.messages_sent += msgs.len() as u64;
            self.stats.eager_pushes += 1;
            self.send_compound(&msgs, others);
        }
        if more {
            self.arm_eager(now);
        }
    }
}

/// Bytes `msgs` take in a compound.
fn used(msgs: &[Vec<u8>]) -> usize {
    msgs.iter().map(|m| m.len() + COMPOUND_PART_OVERHEAD).sum()
}

/// Adds to `msgs` what of `queue` fits in the rest of `budget`, each taken
/// message counting one transmit of `transmits`.
fn fill(msgs: &mut Vec<Vec<u8>>, queue: &mut BroadcastQueue, budget: usize, transmits: usize) {
    let used = used(msgs);
    if used < budget {
        msgs.extend(queue.take(COMPOUND_PART_OVERHEAD, budget - used, transmits));
    }
}

/// As [`fill`], of the messages sent fewer than [`EAGER_ROUNDS`] times.
fn fill_sent_fewer_than(
    msgs: &mut Vec<Vec<u8>>,
    queue: &mut BroadcastQueue,
    budget: usize,
    transmits: usize,
) {
    let used = used(msgs);
    if used < budget {
        msgs.extend(queue.take_sent_fewer_than(
            EAGER_ROUNDS,
            COMPOUND_PART_OVERHEAD,
            budget - used,
            transmits,
        ));
    }
}
