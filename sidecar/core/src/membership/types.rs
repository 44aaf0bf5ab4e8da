//! Public value types of the membership core: members, events and outputs.

use std::net::SocketAddr;
use std::time::Instant;

use crate::wire::StreamMessage;

/// A member's state, with memberlist's numbering (it travels in push/pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeStatus {
    /// Answering probes.
    Alive = 0,
    /// Failed a probe; dead unless it refutes in time.
    Suspect = 1,
    /// Declared failed.
    Dead = 2,
    /// Left gracefully.
    Left = 3,
}

impl NodeStatus {
    /// From the wire number; unknown numbers are `None`.
    pub fn from_wire(n: u8) -> Option<Self> {
        match n {
            0 => Some(NodeStatus::Alive),
            1 => Some(NodeStatus::Suspect),
            2 => Some(NodeStatus::Dead),
            3 => Some(NodeStatus::Left),
            _ => None,
        }
    }

    /// Lower-case name, as used in events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Alive => "alive",
            NodeStatus::Suspect => "suspect",
            NodeStatus::Dead => "dead",
            NodeStatus::Left => "left",
        }
    }

    /// Dead or left.
    pub fn is_gone(self) -> bool {
        matches!(self, NodeStatus::Dead | NodeStatus::Left)
    }
}

/// What one node knows of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Unique node name.
    pub name: String,
    /// Address for UDP and TCP.
    pub addr: SocketAddr,
    /// Node metadata (at most 512 bytes).
    pub meta: Vec<u8>,
    /// Incarnation number; only the node itself raises it.
    pub incarnation: u32,
    /// Current state.
    pub status: NodeStatus,
    /// Protocol and delegate versions: pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: [u8; 6],
}

impl Member {
    /// Highest protocol version the member understands.
    pub fn protocol_max(&self) -> u8 {
        self.vsn[1]
    }
}

/// Identifies an outbound stream the shell carries out for the core.
pub type StreamId = u64;

/// Identifies a join started with [`crate::membership::Membership::join`].
pub type JoinId = u64;

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A member joined (or came back after being dead or left). Fires for the local node too.
    Join(Member),
    /// A member was declared dead or left (see its status).
    Leave(Member),
    /// A member's metadata changed.
    Update(Member),
    /// A user message arrived (best-effort, reliable, or broadcast).
    UserMessage(Vec<u8>),
    /// A peer's user state arrived on push/pull.
    RemoteState {
        /// The peer's local state bytes.
        data: Vec<u8>,
        /// True when the exchange was a join.
        join: bool,
    },
    /// A live member's name was claimed from another address; the claim was refused.
    Conflict {
        /// The member as known.
        existing: Member,
        /// The refused claim.
        other: Member,
    },
    /// A join finished: `contacted` seeds answered; `errors` says why the others did not.
    JoinFinished {
        /// The join's id.
        id: JoinId,
        /// Seeds that completed a push/pull.
        contacted: usize,
        /// One entry per failed seed: its address and the reason.
        errors: Vec<String>,
    },
    /// A reliable user message ([`crate::membership::Membership::send_reliable`])
    /// was not delivered.
    SendFailed {
        /// The id `send_reliable` returned.
        id: StreamId,
        /// The member it was for.
        to: String,
        /// Why.
        error: String,
    },
    /// A leave finished: its broadcast went out, or the timeout passed.
    LeaveFinished {
        /// True when the leave broadcast was fully sent before the timeout.
        broadcast_sent: bool,
    },
}

/// A stream the shell opens: connect to `to`, write `data`, then, if
/// `expect_reply`, read one stream message with
/// [`crate::membership::Membership::decode_stream_frame`] (`inbound = false`);
/// hand the result back with
/// [`crate::membership::Membership::handle_stream_result`] before `deadline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// Correlates the result.
    pub id: StreamId,
    /// Where to connect.
    pub to: SocketAddr,
    /// Bytes to write (framed: label, compression and encryption applied).
    pub data: Vec<u8>,
    /// Whether a reply message is expected.
    pub expect_reply: bool,
    /// Give up (and report an error) at this time.
    pub deadline: Instant,
}

/// What a stream request came to.
pub type StreamResult = Result<Option<StreamMessage>, String>;

/// An instruction from the core to its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send one UDP datagram.
    Packet {
        /// Destination.
        to: SocketAddr,
        /// The datagram, fully framed.
        data: Vec<u8>,
    },
    /// Carry out a stream exchange.
    Stream(StreamRequest),
    /// Publish an event.
    Event(Event),
}

/// Counters the core keeps; the shell adds byte counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handled.
    pub packets_received: u64,
    /// Packets emitted.
    pub packets_sent: u64,
    /// Packets or parts that failed to decode.
    pub malformed: u64,
    /// Packets and streams refused for a different label.
    pub label_mismatches: u64,
    /// Address conflicts refused.
    pub conflicts: u64,
    /// Probes that failed and raised a suspicion.
    pub failed_probes: u64,
    /// Members this node marked suspect (Alive => Suspect), after a
    /// failed probe of its own or on another member's gossip.
    pub suspicions: u64,
    /// Times this node refuted a suspicion or death of itself.
    pub refutations: u64,
    /// Packets and streams refused because they could not be decrypted
    /// (wrong key, altered, or plain while encryption is enforced).
    pub decrypt_failures: u64,
    /// Catch-up push/pulls started after membership changes (none with
    /// `memberlist_exact`).
    pub catch_ups: u64,
}

/// Converts wire address bytes (4 or 16, v4-mapped accepted) and a port.
pub fn addr_from_wire(ip: &[u8], port: u16) -> Option<SocketAddr> {
    crate::wire::ip_from_wire(ip).map(|ip| SocketAddr::new(ip, port))
}

/// The wire form of an address's IP: 4 bytes for IPv4, 16 for IPv6.
pub fn ip_to_wire(addr: &SocketAddr) -> Vec<u8> {
    crate::wire::ip_to_wire(addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn addresses_roundtrip_and_accept_mapped_v4() {
        let a: SocketAddr = "10.1.2.3:7946".parse().unwrap();
        assert_eq!(addr_from_wire(&ip_to_wire(&a), 7946), Some(a));
        let mapped = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets();
        assert_eq!(addr_from_wire(&mapped, 7946), Some(a));
        let v6: SocketAddr = "[::1]:7946".parse().unwrap();
        assert_eq!(addr_from_wire(&ip_to_wire(&v6), 7946), Some(v6));
        assert_eq!(addr_from_wire(&[1, 2, 3], 1), None);
    }
}
