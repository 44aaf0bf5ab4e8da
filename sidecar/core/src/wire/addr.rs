//! IP addresses as memberlist carries them: a Go `net.IP` byte slice.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Reads an address field (`Addr`, `Target`, `SourceAddr`): 4 bytes is
/// IPv4; 16 bytes is IPv6, or IPv4 when it is an IPv4-mapped address
/// (`::ffff:a.b.c.d`, Go's default in-memory form for IPv4). Any other
/// length is not an address.
pub fn ip_from_wire(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            let v6 = Ipv6Addr::from(a);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

/// Writes an address as memberlist's transport advertises it: 4 bytes for
/// IPv4, 16 for IPv6.
pub fn ip_to_wire(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(ip_from_wire(&[10, 0, 0, 1]), Some(v4));
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1];
        assert_eq!(ip_from_wire(&mapped), Some(v4));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_from_wire(&ip_to_wire(v6)), Some(v6));
        assert_eq!(ip_to_wire(v4), vec![10, 0, 0, 1]);
        assert_eq!(ip_from_wire(&[1, 2, 3]), None);
        assert_eq!(ip_from_wire(&[]), None);
    }
}
