//! Free loopback ports for peers.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Mutex;

/// Lowest port handed out.
const LOW: u16 = 20_000;
/// One past the highest port handed out when the kernel's ephemeral range
/// cannot be read; kept below Linux's default ephemeral range (32768) so a
/// peer never collides with an outgoing connection's source port.
const DEFAULT_HIGH: u16 = 32_768;

/// Returns `n` distinct loopback ports on which both a UDP socket and a TCP
/// listener could just be bound.
///
/// Ports come from a process-wide cursor that starts at a random point of
/// the range below the kernel's ephemeral ports and only moves forward, so
/// tests in one process never get the same port twice and parallel test
/// processes start far apart; the bind checks catch the rest.
///
/// # Panics
/// If the range holds fewer than `n` free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    static CURSOR: Mutex<Option<u16>> = Mutex::new(None);
    let high = ephemeral_low()
        .unwrap_or(DEFAULT_HIGH)
        .clamp(LOW + 1000, DEFAULT_HIGH);
    let span = u32::from(high - LOW);
    let mut cursor = CURSOR.lock().unwrap_or_else(|e| e.into_inner());
    let mut next = cursor.unwrap_or_else(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        LOW + (h.finish() % u64::from(span)) as u16
    });
    let mut ports = Vec::with_capacity(n);
    for _ in 0..span {
        if ports.len() == n {
            break;
        }
        let port = next;
        next = if next + 1 >= high { LOW } else { next + 1 };
        if usable(port) {
            ports.push(port);
        }
    }
    *cursor = Some(next);
    assert!(
        ports.len() == n,
        "only {} of {n} free loopback ports found in {LOW}..{high}",
        ports.len()
    );
    ports
}

fn usable(port: u16) -> bool {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
    let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
    udp.is_ok() && tcp.is_ok()
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}
