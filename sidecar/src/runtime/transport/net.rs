//! The production transport: UDP and TCP on one port.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::{Socket, Transport, MAX_DATAGRAM};

/// Real sockets. Binding port 0 finds a port free for both UDP and TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetTransport;

/// A UDP socket and a TCP listener bound to the same address.
#[derive(Debug)]
pub struct NetSocket {
    udp: UdpSocket,
    /// The same UDP socket, for sends: a non-blocking send on it goes to
    /// the kernel at once, where tokio's `try_send_to` refuses until its
    /// reactor has first seen the socket writable (losing the first
    /// datagrams of a fresh socket).
    send: std::net::UdpSocket,
    tcp: TcpListener,
    local: SocketAddr,
}

impl Transport for NetTransport {
    type Socket = NetSocket;

    async fn bind(&self, addr: SocketAddr) -> io::Result<NetSocket> {
        // TCP first, then UDP on the port TCP got; with port 0 that port
        // may be taken for UDP, so a few ports are tried.
        let attempts = if addr.port() == 0 { 20 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let tcp = TcpListener::bind(addr).await?;
            let port_addr = tcp.local_addr()?;
            match std::net::UdpSocket::bind(port_addr) {
                Ok(std_udp) => {
                    std_udp.set_nonblocking(true)?;
                    let send = std_udp.try_clone()?;
                    let udp = UdpSocket::from_std(std_udp)?;
                    let local = udp.local_addr()?;
                    return Ok(NetSocket {
                        udp,
                        send,
                        tcp,
                        local,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no port found")))
    }
}

impl Socket for NetSocket {
    type Stream = TcpStream;

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        if data.len() > MAX_DATAGRAM {
            // The kernel refuses these too (EMSGSIZE); saying so here
            // gives the same error kind on every platform and transport.
            return Err(too_large(data.len()));
        }
        self.send.send_to(data, to)
    }

    async fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.udp.recv_from(buf).await
    }

    async fn connect(&self, to: SocketAddr) -> io::Result<TcpStream> {
        let conn = TcpStream::connect(to).await?;
        // One message each way: waiting to coalesce only adds latency.
        let _ = conn.set_nodelay(true);
        Ok(conn)
    }

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.tcp.accept().await
    }
}

/// The error for a datagram over [`MAX_DATAGRAM`].
pub(super) fn too_large(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("datagram of {len} bytes exceeds the {MAX_DATAGRAM}-byte limit"),
    )
}
