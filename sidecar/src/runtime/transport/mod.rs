//! What the node task talks through: a [`Transport`] binds an address and
//! hands back a [`Socket`] that sends and receives datagrams and opens and
//! accepts byte streams. [`NetTransport`] is UDP and TCP sharing one port;
//! [`MemNetwork`] is its in-process twin, where every socket of one network
//! reaches every other and time can be paused. Both pass the same
//! conformance suite (`conformance.rs`), so a test that runs the shell on
//! the twin exercises what production runs on sockets.

mod mem;
mod net;

#[cfg(test)]
mod conformance;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

pub use mem::{MemNetwork, MemSocket};
pub use net::{NetSocket, NetTransport};

/// The largest datagram payload a [`Socket`] carries: UDP's over IPv4
/// (65535 less the IP and UDP headers). Larger ones MUST fail to send.
pub const MAX_DATAGRAM: usize = 65_507;

/// Binds addresses. The node binds one address for both datagrams and
/// streams, as memberlist does.
pub trait Transport: Send + Sync + 'static {
    /// What a bound address becomes.
    type Socket: Socket;

    /// Binds `addr`; port 0 picks a free port.
    ///
    /// # Errors
    /// The address is taken or cannot be bound.
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Socket>> + Send;
}

/// A bound address: datagrams in and out, streams in and out. Dropping it
/// releases the address (streams already open stay open).
pub trait Socket: Send + Sync + 'static {
    /// A connected byte stream; shutting down its write half is seen by
    /// the peer as end of stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The address bound (the chosen port when 0 was asked for).
    fn local_addr(&self) -> SocketAddr;

    /// Sends one datagram without waiting. Delivery is not promised:
    /// a datagram to an address nobody binds is lost without an error.
    ///
    /// # Errors
    /// `data` is larger than [`MAX_DATAGRAM`], or the socket cannot send
    /// now.
    fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize>;

    /// Receives one datagram into `buf`; a longer one is cut to
    /// `buf.len()`. Cancel-safe: a datagram is never lost by dropping the
    /// future before it completes.
    ///
    /// # Errors
    /// The socket failed.
    fn recv_from<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a;

    /// Opens a stream to `to`. A partitioned peer may never answer: callers
    /// bound the wait themselves.
    ///
    /// # Errors
    /// Nobody accepts streams at `to` (`ConnectionRefused`), or the
    /// connection failed.
    fn connect(&self, to: SocketAddr)
        -> impl Future<Output = io::Result<Self::Stream>> + Send + '_;

    /// Waits for the next inbound stream and the address it came from.
    /// Cancel-safe.
    ///
    /// # Errors
    /// Accepting failed (the caller may keep accepting).
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send + '_;
}
