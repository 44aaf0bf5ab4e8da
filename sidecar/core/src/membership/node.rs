//! Member state transitions: alive, suspect, dead, left, refutation and
//! address conflicts (memberlist's `aliveNode`, `suspectNode`, `deadNode`).

use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::{
    addr_from_wire, suspicion_timeout, AckHandler, Event, LeaveState, Member, Membership,
    NodeStatus, Suspicion, Timer, CONFLICT_REPORT_INTERVAL,
};
use crate::wire::{self, Message};

/// A member plus what only this node tracks about it.
#[derive(Debug, Clone)]
pub(super) struct NodeState {
    pub member: Member,
    /// When `member.status` last changed.
    pub state_change: Instant,
}

impl<D: super::Delegate> Membership<D> {
    /// Dispatches one message from a packet.
    pub(super) fn handle_message(&mut self, from: SocketAddr, msg: Message, now: Instant) {
        match msg {
            Message::Ping(p) => self.handle_ping(from, p),
            Message::IndirectPing(ind) => self.handle_indirect_ping(from, ind, now),
            Message::Ack(ack) => self.handle_ack(ack, now),
            Message::Nack(n) => {
                if let Some(p) = self.probe.as_mut() {
                    if p.seq == n.seq_no {
                        p.nacks += 1;
                    }
                }
            }
            Message::Suspect(s) => self.suspect_node(s, now),
            Message::Alive(a) => self.alive_node(a, false, now),
            Message::Dead(d) => self.dead_node(d, now),
            Message::User(data) => self.emit(Event::UserMessage(data)),
            Message::Err(e) => debug!(%from, error = %e.error, "peer reported an error"),
        }
    }

    fn handle_ping(&mut self, from: SocketAddr, p: wire::Ping) {
        if !p.node.is_empty() && p.node != self.cfg.name {
            debug!(%from, node = %p.node, "ping for another node, ignored");
            return;
        }
        let to = if !p.source_addr.is_empty() && p.source_port > 0 {
            addr_from_wire(&p.source_addr, p.source_port).unwrap_or(from)
        } else {
            from
        };
        let ack = Message::Ack(wire::Ack {
            seq_no: p.seq_no,
            payload: Vec::new(),
        });
        self.send_msg(to, &ack);
    }

    fn handle_indirect_ping(&mut self, from: SocketAddr, ind: wire::IndirectPing, now: Instant) {
        let Some(target) = addr_from_wire(&ind.target, ind.port) else {
            self.stats.malformed += 1;
            debug!(%from, len = ind.target.len(), "indirect ping with a bad target address");
            return;
        };
        let reply_to = if !ind.source_addr.is_empty() && ind.source_port > 0 {
            addr_from_wire(&ind.source_addr, ind.source_port).unwrap_or(from)
        } else {
            from
        };
        let seq = self.next_seq();
        self.acks.insert(
            seq,
            AckHandler::Indirect {
                reply_to,
                orig_seq: ind.seq_no,
                nack: ind.nack,
            },
        );
        self.arm(now + self.cfg.probe_timeout, Timer::AckExpire(seq));
        let ping = Message::Ping(wire::Ping {
            seq_no: seq,
            node: ind.node.clone(),
            source_addr: super::ip_to_wire(&self.cfg.advertise),
            source_port: self.cfg.advertise.port(),
            source_node: self.cfg.name.clone(),
        });
        self.send_msg(target, &ping);
    }

    fn handle_ack(&mut self, ack: wire::Ack, now: Instant) {
        match self.acks.remove(&ack.seq_no) {
            Some(AckHandler::Probe) => self.probe_acked(ack.seq_no, now),
            Some(AckHandler::Indirect {
                reply_to, orig_seq, ..
            }) => {
                let fwd = Message::Ack(wire::Ack {
                    seq_no: orig_seq,
                    payload: Vec::new(),
                });
                self.send_msg(reply_to, &fwd);
            }
            None => {}
        }
    }

    /// Beats an accusation about ourselves with a higher incarnation.
    fn refute(&mut self, accused: u32, now: Instant) {
        let mut inc = self.next_incarnation();
        if accused >= inc {
            self.incarnation = accused.wrapping_add(1);
            inc = self.incarnation;
        }
        self.stats.refutations += 1;
        // Being accused is a sign we may be the slow one.
        self.awareness.apply(1);
        let a = self.local_alive(inc);
        if let Some(me) = self.nodes.get_mut(&self.cfg.name) {
            me.member.incarnation = inc;
            me.state_change = now;
        }
        let name = self.cfg.name.clone();
        self.broadcast_about(&name, &Message::Alive(a), false);
    }

    /// memberlist's `aliveNode`; `bootstrap` is set for our own announcements.
    pub(super) fn alive_node(&mut self, a: wire::Alive, bootstrap: bool, now: Instant) {
        let is_local = a.node == self.cfg.name;
        if self.left && is_local {
            return;
        }
        if a.vsn.len() >= 3 {
            let (pmin, pmax) = (a.vsn[0], a.vsn[1]);
            if pmin == 0 || pmax == 0 || pmin > pmax {
                debug!(node = %a.node, ?a.vsn, "alive message with impossible protocol versions, ignored");
                return;
            }
        }
        let Some(addr) = addr_from_wire(&a.addr, a.port) else {
            self.stats.malformed += 1;
            debug!(node = %a.node, len = a.addr.len(), "alive message with a bad address, ignored");
            return;
        };
        let mut vsn = [0u8; 6];
        let known_vsn = a.vsn.len() >= 6;
        if known_vsn {
            vsn.copy_from_slice(&a.vsn[..6]);
        }
        let mut reclaim = false;
        match self.nodes.get(&a.node) {
            None => {
                let member = Member {
                    name: a.node.clone(),
                    addr,
                    meta: a.meta.clone(),
                    incarnation: 0,
                    status: NodeStatus::Dead,
                    vsn,
                };
                self.nodes.insert(
                    a.node.clone(),
                    NodeState {
                        member,
                        state_change: now,
                    },
                );
                // Insert at a random place so probe order stays random.
                self.order.insert_random(a.node.clone(), &mut self.rng);
            }
            Some(state) if state.member.addr != addr => {
                let since = now.saturating_duration_since(state.state_change);
                let can_reclaim = state.member.status == NodeStatus::Left
                    || (state.member.status == NodeStatus::Dead
                        && since >= self.cfg.dead_node_reclaim_time);
                if can_reclaim {
                    info!(node = %a.node, old = %state.member.addr, new = %addr, "member came back on a new address");
                    reclaim = true;
                } else {
                    let existing = state.member.clone();
                    self.report_conflict(existing, a, addr, vsn, now);
                    return;
                }
            }
            Some(_) => {}
        }
        let Some(state) = self.nodes.get(&a.node) else {
            return;
        };
        if a.incarnation <= state.member.incarnation && !is_local && !reclaim {
            return;
        }
        if a.incarnation < state.member.incarnation && is_local {
            return;
        }
        self.suspicions.remove(&a.node);
        let old_status = state.member.status;
        let old_meta = state.member.meta.clone();
        let current_vsn = state.member.vsn;
        let current_inc = state.member.incarnation;

        if !bootstrap && is_local {
            // Someone gossips about us: same news is fine, different news is refuted.
            if a.incarnation == current_inc && a.meta == old_meta && a.vsn == current_vsn {
                return;
            }
            warn!(
                incarnation = a.incarnation,
                "refuting an alive message about this node"
            );
            self.refute(a.incarnation, now);
        } else {
            let node = a.node.clone();
            self.broadcast_about(&node, &Message::Alive(a.clone()), false);
            let Some(state) = self.nodes.get_mut(&a.node) else {
                return;
            };
            if known_vsn {
                state.member.vsn = vsn;
            }
            state.member.incarnation = a.incarnation;
            state.member.meta = a.meta;
            state.member.addr = addr;
            // Dead/Left/Suspect => Alive
            if state.member.status != NodeStatus::Alive {
                state.member.status = NodeStatus::Alive;
                state.state_change = now;
            }
        }
        let member = self.nodes.get(&a.node).map(|s| s.member.clone());
        if let Some(member) = member {
            if old_status.is_gone() {
                self.emit(Event::Join(member));
            } else if old_meta != member.meta {
                self.emit(Event::Update(member));
            }
        }
    }

    fn report_conflict(
        &mut self,
        existing: Member,
        a: wire::Alive,
        addr: SocketAddr,
        vsn: [u8; 6],
        now: Instant,
    ) {
        self.stats.conflicts += 1;
        let key = (a.node.clone(), addr);
        let due = self
            .conflicts_reported
            .get(&key)
            .is_none_or(|t| now.saturating_duration_since(*t) >= CONFLICT_REPORT_INTERVAL);
        if !due {
            return;
        }
        self.conflicts_reported.insert(key, now);
        warn!(node = %a.node, existing = %existing.addr, other = %addr, state = existing.status.as_str(),
            "refused a claim to a live member's name from another address");
        let other = Member {
            name: a.node,
            addr,
            meta: a.meta,
            incarnation: a.incarnation,
            status: NodeStatus::Alive,
            vsn,
        };
        self.emit(Event::Conflict { existing, other });
    }

    /// memberlist's `suspectNode`, with Lifeguard's confirmations.
    pub(super) fn suspect_node(&mut self, s: wire::Suspect, now: Instant) {
        let Some(state) = self.nodes.get(&s.node) else {
            return;
        };
        if s.incarnation < state.member.incarnation {
            return;
        }
        if let Some(susp) = self.suspicions.get_mut(&s.node) {
            // Already suspected: an independent confirmation shortens the timeout.
            if susp.confirm(&s.from) {
                let deadline = susp.deadline();
                let node = s.node.clone();
                self.broadcast_about(&node, &Message::Suspect(s), false);
                self.arm(deadline, Timer::Suspicion(node));
            }
            return;
        }
        if state.member.status != NodeStatus::Alive {
            return;
        }
        if s.node == self.cfg.name {
            warn!(from = %s.from, "refuting a suspicion of this node");
            self.refute(s.incarnation, now);
            return;
        }
        let node = s.node.clone();
        self.broadcast_about(&node, &Message::Suspect(s.clone()), false);
        if let Some(state) = self.nodes.get_mut(&s.node) {
            // Alive => Suspect
            self.stats.suspicions += 1;
            state.member.incarnation = s.incarnation;
            state.member.status = NodeStatus::Suspect;
            state.state_change = now;
        }
        let n = self.order.len();
        let mut k = self.cfg.suspicion_mult.saturating_sub(2);
        if n.saturating_sub(2) < k {
            k = 0;
        }
        let min = suspicion_timeout(self.cfg.suspicion_mult, n, self.cfg.probe_interval);
        let max = min * self.cfg.suspicion_max_timeout_mult as u32;
        let susp = Suspicion::new(&s.from, k, min, max, now);
        let deadline = susp.deadline();
        self.suspicions.insert(node.clone(), susp);
        self.arm(deadline, Timer::Suspicion(node));
    }

    pub(super) fn suspicion_expired(&mut self, node: String, now: Instant) {
        let Some(susp) = self.suspicions.get(&node) else {
            return;
        };
        if susp.deadline() > now {
            // A stale timer from before a confirmation moved the deadline.
            return;
        }
        let confirmations = susp.confirmations();
        let Some(state) = self.nodes.get(&node) else {
            return;
        };
        if state.member.status != NodeStatus::Suspect {
            self.suspicions.remove(&node);
            return;
        }
        info!(node = %node, confirmations, "suspect timeout reached: marking failed");
        let d = wire::Dead {
            incarnation: state.member.incarnation,
            node,
            from: self.cfg.name.clone(),
        };
        self.dead_node(d, now);
    }

    /// memberlist's `deadNode`: dead when another node says so, left when the
    /// node says so itself.
    pub(super) fn dead_node(&mut self, d: wire::Dead, now: Instant) {
        let Some(state) = self.nodes.get(&d.node) else {
            return;
        };
        if d.incarnation < state.member.incarnation {
            return;
        }
        self.suspicions.remove(&d.node);
        if state.member.status.is_gone() {
            return;
        }
        let is_local = d.node == self.cfg.name;
        if is_local && !self.left {
            warn!(from = %d.from, "refuting a death of this node");
            self.refute(d.incarnation, now);
            return;
        }
        let node = d.node.clone();
        let left = d.node == d.from;
        let id = self.broadcast_about(&node, &Message::Dead(d.clone()), is_local);
        if is_local {
            self.leave = Some(LeaveState { broadcast: id });
        }
        let Some(state) = self.nodes.get_mut(&d.node) else {
            return;
        };
        // Alive/Suspect => Dead, or => Left when the node itself says so.
        state.member.incarnation = d.incarnation;
        state.member.status = if left {
            NodeStatus::Left
        } else {
            NodeStatus::Dead
        };
        state.state_change = now;
        let member = state.member.clone();
        self.emit(Event::Leave(member));
    }

    /// Forgets dead and left members older than the gossip-to-the-dead time
    /// and reshuffles the probe order (memberlist's `resetNodes`).
    pub(super) fn reset_nodes(&mut self, now: Instant) {
        let keep = self.cfg.gossip_to_the_dead_time;
        let nodes = &mut self.nodes;
        let me = &self.cfg.name;
        self.order.retain(|name| {
            let expired = nodes.get(name).is_none_or(|n| {
                name != me
                    && n.member.status.is_gone()
                    && now.saturating_duration_since(n.state_change) > keep
            });
            if expired {
                nodes.remove(name);
            }
            !expired
        });
        self.order.shuffle(&mut self.rng);
    }
}
