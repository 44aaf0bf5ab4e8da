//! Failure detection: one probe at a time, in shuffled round-robin order —
//! direct UDP ping, then indirect pings (with nacks) and a TCP fallback ping,
//! then suspicion.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::{ip_to_wire, AckHandler, Membership, NodeStatus, StreamPurpose, Timer};
use crate::wire::{self, Message, StreamMessage};

/// The probe in flight.
#[derive(Debug)]
pub(super) struct Probe {
    pub seq: u32,
    pub target: String,
    pub start: Instant,
    /// End of this probe round: the awareness-scaled probe interval.
    pub deadline: Instant,
    pub nacks: usize,
    pub expected_nacks: usize,
    pub tcp_contact: bool,
}

impl<D: super::Delegate> Membership<D> {
    /// Picks the next member to probe, round robin over the shuffled list,
    /// skipping ourselves and dead or left members.
    pub(super) fn probe_tick(&mut self, now: Instant) {
        if self.probe.is_some() {
            return;
        }
        let mut checked = 0;
        let target = loop {
            if checked >= self.order.len() {
                break None;
            }
            if self.probe_index >= self.order.len() {
                self.reset_nodes(now);
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let name = self.order[self.probe_index].clone();
            self.probe_index += 1;
            let skip = name == self.cfg.name
                || self
                    .nodes
                    .get(&name)
                    .is_none_or(|n| n.member.status.is_gone());
            if skip {
                checked += 1;
                continue;
            }
            break Some(name);
        };
        match target {
            Some(name) => self.probe_node(name, now),
            None => {
                let at = now + self.cfg.probe_interval;
                self.arm(at, Timer::Probe);
            }
        }
    }

    fn probe_node(&mut self, target: String, now: Instant) {
        let Some(node) = self.nodes.get(&target) else {
            return;
        };
        let (addr, pmax, status, inc) = (
            node.member.addr,
            node.member.protocol_max(),
            node.member.status,
            node.member.incarnation,
        );
        let interval = self.awareness.scale(self.cfg.probe_interval);
        let seq = self.next_seq();
        let ping = Message::Ping(wire::Ping {
            seq_no: seq,
            node: target.clone(),
            source_addr: ip_to_wire(&self.cfg.advertise),
            source_port: self.cfg.advertise.port(),
            source_node: self.cfg.name.clone(),
        });
        if status == NodeStatus::Alive {
            self.send_msg(addr, &ping);
        } else {
            // Buddy system: tell a suspect it is suspected, so it can refute at once.
            let suspect = Message::Suspect(wire::Suspect {
                incarnation: inc,
                node: target.clone(),
                from: self.cfg.name.clone(),
            });
            let (mut a, mut b) = (Vec::new(), Vec::new());
            ping.encode(&mut a);
            suspect.encode(&mut b);
            self.send_packet(addr, Some(pmax), wire::encode_compound(&[a, b]));
        }
        self.acks.insert(seq, AckHandler::Probe);
        self.probe = Some(Probe {
            seq,
            target,
            start: now,
            deadline: now + interval,
            nacks: 0,
            expected_nacks: 0,
            tcp_contact: false,
        });
        self.arm(now + self.cfg.probe_timeout, Timer::ProbeTimeout(seq));
        self.arm(now + interval, Timer::ProbeDeadline(seq));
    }

    /// The probe's target (or a member on its behalf) answered.
    pub(super) fn probe_acked(&mut self, seq: u32, now: Instant) {
        let Some(p) = self.probe.take_if(|p| p.seq == seq) else {
            return;
        };
        self.awareness.apply(-1);
        // The next probe starts on the next tick of the probe interval.
        let interval = self.cfg.probe_interval;
        let elapsed = now.saturating_duration_since(p.start);
        let ticks = (elapsed.as_nanos() / interval.as_nanos().max(1)) as u32 + 1;
        self.arm(p.start + interval * ticks, Timer::Probe);
    }

    /// No direct ack within the probe timeout: ask others, and try TCP.
    pub(super) fn probe_timeout(&mut self, seq: u32, now: Instant) {
        let Some(p) = self.probe.as_ref().filter(|p| p.seq == seq) else {
            return;
        };
        let target = p.target.clone();
        let Some(node) = self.nodes.get(&target) else {
            return;
        };
        let (addr, pmax) = (node.member.addr, node.member.protocol_max());
        debug!(node = %target, "no direct ack: trying indirect probes");
        let me = self.cfg.name.clone();
        let helpers = self.random_nodes(self.cfg.indirect_checks, |n| {
            n.member.name == me || n.member.name == target || n.member.status != NodeStatus::Alive
        });
        let mut expected = 0;
        for (helper, helper_pmax, _) in helpers {
            // Only members on protocol 4 and up send nacks.
            let nack = helper_pmax >= 4;
            expected += usize::from(nack);
            let ind = Message::IndirectPing(wire::IndirectPing {
                seq_no: seq,
                target: ip_to_wire(&addr),
                port: addr.port(),
                node: target.clone(),
                nack,
                source_addr: ip_to_wire(&self.cfg.advertise),
                source_port: self.cfg.advertise.port(),
                source_node: self.cfg.name.clone(),
            });
            self.send_msg(helper, &ind);
        }
        if let Some(p) = self.probe.as_mut() {
            p.expected_nacks = expected;
        }
        if !self.cfg.disable_tcp_pings && pmax >= 3 {
            let ping = StreamMessage::Ping(wire::Ping {
                seq_no: seq,
                node: target.clone(),
                source_addr: ip_to_wire(&self.cfg.advertise),
                source_port: self.cfg.advertise.port(),
                source_node: self.cfg.name.clone(),
            });
            let data = self.seal_stream(&ping, true);
            self.open_stream(addr, data, true, now, StreamPurpose::TcpPing { seq });
        }
    }

    /// End of the probe round without an ack: suspect the target.
    pub(super) fn probe_deadline(&mut self, seq: u32, now: Instant) {
        let Some(p) = self.probe.take_if(|p| p.seq == seq) else {
            return;
        };
        self.acks.remove(&seq);
        self.arm(now, Timer::Probe);
        if p.tcp_contact {
            // Contact over TCP counts as alive, but UDP is broken somewhere.
            warn!(node = %p.target, "reachable over TCP but UDP probes failed: check the network");
            self.awareness.apply(-1);
            return;
        }
        // Lifeguard: missing nacks mean the fault may be ours, not the target's.
        let delta = if p.expected_nacks > 0 {
            p.expected_nacks.saturating_sub(p.nacks) as i64
        } else {
            1
        };
        self.awareness.apply(delta);
        self.stats.failed_probes += 1;
        let Some(node) = self.nodes.get(&p.target) else {
            return;
        };
        info!(node = %p.target, nacks = p.nacks, "suspecting member: no acks received");
        let s = wire::Suspect {
            incarnation: node.member.incarnation,
            node: p.target,
            from: self.cfg.name.clone(),
        };
        self.suspect_node(s, now);
    }
}
