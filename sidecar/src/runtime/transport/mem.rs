//! The in-process twin of [`super::NetTransport`]: a network of addresses
//! held in a map, datagrams on channels, streams on [`tokio::io::duplex`]
//! pipes. Nothing here reads a clock, so under paused tokio time a whole
//! cluster runs in virtual time. Addresses can be isolated (their datagrams
//! lost, their connections left hanging) and healed.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::net::too_large;
use super::{Socket, Transport, MAX_DATAGRAM};

/// Datagrams queued for a socket before more are lost, as a full UDP
/// receive buffer loses them.
const PACKET_QUEUE: usize = 4096;
/// Connections waiting to be accepted before more are refused (a listen
/// backlog).
const BACKLOG: usize = 1024;
/// Bytes buffered each way in a stream.
const PIPE_BYTES: usize = 64 * 1024;
/// Ports handed out for port 0 and for the near end of connections.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

type Datagram = (Vec<u8>, SocketAddr);
type Inbound = (DuplexStream, SocketAddr);

/// A shared in-process network; clones are the same network.
#[derive(Debug, Clone, Default)]
pub struct MemNetwork {
    inner: Arc<Mutex<Net>>,
}

#[derive(Debug, Default)]
struct Net {
    hosts: HashMap<SocketAddr, Host>,
    isolated: HashSet<SocketAddr>,
    next_port: u16,
    next_id: u64,
}

#[derive(Debug)]
struct Host {
    id: u64,
    packets: mpsc::Sender<Datagram>,
    streams: mpsc::Sender<Inbound>,
}

impl Net {
    /// A port of `ip` that no socket holds.
    fn free_port(&mut self, ip: std::net::IpAddr) -> Option<u16> {
        let span = usize::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
        for _ in 0..span {
            if !EPHEMERAL.contains(&self.next_port) {
                self.next_port = *EPHEMERAL.start();
            }
            let port = self.next_port;
            self.next_port = self.next_port.wrapping_add(1);
            if !self.hosts.contains_key(&SocketAddr::new(ip, port)) {
                return Some(port);
            }
        }
        None
    }

    fn cut(&self, a: SocketAddr, b: SocketAddr) -> bool {
        self.isolated.contains(&a) || self.isolated.contains(&b)
    }
}

impl MemNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Net> {
        // The map stays consistent whatever panicked while holding it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a socket holds `addr`.
    pub fn is_bound(&self, addr: SocketAddr) -> bool {
        self.lock().hosts.contains_key(&addr)
    }

    /// Cuts `addr` off: datagrams to and from it are lost and connections
    /// to and from it are never answered, until [`MemNetwork::heal`].
    pub fn isolate(&self, addr: SocketAddr) {
        self.lock().isolated.insert(addr);
    }

    /// Undoes [`MemNetwork::isolate`].
    pub fn heal(&self, addr: SocketAddr) {
        self.lock().isolated.remove(&addr);
    }
}

impl Transport for MemNetwork {
    type Socket = MemSocket;

    async fn bind(&self, mut addr: SocketAddr) -> io::Result<MemSocket> {
        let mut net = self.lock();
        if addr.port() == 0 {
            let port = net
                .free_port(addr.ip())
                .ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port left"))?;
            addr.set_port(port);
        } else if net.hosts.contains_key(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{addr} is already bound"),
            ));
        }
        let (ptx, prx) = mpsc::channel(PACKET_QUEUE);
        let (stx, srx) = mpsc::channel(BACKLOG);
        net.next_id += 1;
        let id = net.next_id;
        net.hosts.insert(
            addr,
            Host {
                id,
                packets: ptx,
                streams: stx,
            },
        );
        Ok(MemSocket {
            net: self.clone(),
            local: addr,
            id,
            packets: tokio::sync::Mutex::new(prx),
            streams: tokio::sync::Mutex::new(srx),
        })
    }
}

/// An address bound on a [`MemNetwork`].
#[derive(Debug)]
pub struct MemSocket {
    net: MemNetwork,
    local: SocketAddr,
    id: u64,
    packets: tokio::sync::Mutex<mpsc::Receiver<Datagram>>,
    streams: tokio::sync::Mutex<mpsc::Receiver<Inbound>>,
}

impl Drop for MemSocket {
    fn drop(&mut self) {
        let mut net = self.net.lock();
        if net.hosts.get(&self.local).is_some_and(|h| h.id == self.id) {
            net.hosts.remove(&self.local);
        }
    }
}

impl Socket for MemSocket {
    type Stream = DuplexStream;

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        if data.len() > MAX_DATAGRAM {
            return Err(too_large(data.len()));
        }
        let net = self.net.lock();
        if net.cut(self.local, to) {
            return Ok(data.len());
        }
        if let Some(host) = net.hosts.get(&to) {
            // A full queue loses the datagram, as a full receive buffer does.
            let _ = host.packets.try_send((data.to_vec(), self.local));
        }
        Ok(data.len())
    }

    async fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut rx = self.packets.lock().await;
        let (data, from) = rx
            .recv()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "network gone"))?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok((n, from))
    }

    async fn connect(&self, to: SocketAddr) -> io::Result<DuplexStream> {
        let attempt = {
            let mut net = self.net.lock();
            if net.cut(self.local, to) {
                None
            } else {
                let host = net.hosts.get(&to).map(|h| h.streams.clone());
                let port = net.free_port(self.local.ip());
                Some((host, port))
            }
        };
        let Some((host, port)) = attempt else {
            // No answer ever comes: the caller's deadline decides.
            return std::future::pending().await;
        };
        let refused = || {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("nobody accepts streams at {to}"),
            )
        };
        let host = host.ok_or_else(refused)?;
        let from = SocketAddr::new(self.local.ip(), port.unwrap_or(0));
        let (near, far) = tokio::io::duplex(PIPE_BYTES);
        host.try_send((far, from)).map_err(|_| refused())?;
        Ok(near)
    }

    async fn accept(&self) -> io::Result<(DuplexStream, SocketAddr)> {
        self.streams
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "network gone"))
    }
}
