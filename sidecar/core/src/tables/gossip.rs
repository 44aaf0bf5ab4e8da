//! Dissemination: table events gossiped per network, and network and node
//! events handed to memberlist's gossip.

use super::codec::{self, COMPOUND_HEADER_OVERHEAD, COMPOUND_PART_OVERHEAD};
use super::Tables;
use crate::membership::retransmit_limit;

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
}
