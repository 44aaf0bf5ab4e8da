//! One suite, run against [`NetTransport`] on 127.0.0.1 and against
//! [`MemNetwork`]: what the node task relies on from a transport.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{MemNetwork, NetTransport, Socket, Transport, MAX_DATAGRAM};

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Fails the test instead of hanging it.
async fn soon<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out"))
}

async fn recv<S: Socket>(s: &S) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let (n, from) = soon("recv_from", s.recv_from(&mut buf)).await.unwrap();
    buf.truncate(n);
    (buf, from)
}

/// Binding port 0 picks a port; the socket reports it.
async fn bind_picks_a_port<T: Transport>(t: T) {
    let a = t.bind(any_port()).await.unwrap();
    let b = t.bind(any_port()).await.unwrap();
    assert_ne!(a.local_addr().port(), 0);
    assert_ne!(a.local_addr(), b.local_addr());
    assert_eq!(a.local_addr().ip(), any_port().ip());
    // A bound address cannot be bound twice.
    let e = t.bind(a.local_addr()).await.err().expect("second bind");
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
}

/// A datagram arrives whole, with the sender's bound address as source,
/// both ways.
async fn datagrams_arrive_with_their_source<T: Transport>(t: T) {
    let a = t.bind(any_port()).await.unwrap();
    let b = t.bind(any_port()).await.unwrap();
    assert_eq!(a.send_to(b"ping", b.local_addr()).unwrap(), 4);
    assert_eq!(recv(&b).await, (b"ping".to_vec(), a.local_addr()));
    assert_eq!(b.send_to(b"ack", a.local_addr()).unwrap(), 3);
    assert_eq!(recv(&a).await, (b"ack".to_vec(), b.local_addr()));
    // In order on one path, each one on its own.
    for i in 0..10u8 {
        a.send_to(&[i; 3], b.local_addr()).unwrap();
    }
    for i in 0..10u8 {
        assert_eq!(recv(&b).await.0, vec![i; 3]);
    }
}

/// The largest datagram goes through intact; one byte more is refused at
/// the sender; a short buffer gets the datagram's head.
async fn datagram_size_limits<T: Transport>(t: T) {
    let a = t.bind(any_port()).await.unwrap();
    let b = t.bind(any_port()).await.unwrap();
    let big: Vec<u8> = (0..MAX_DATAGRAM).map(|i| (i % 251) as u8).collect();
    assert_eq!(a.send_to(&big, b.local_addr()).unwrap(), MAX_DATAGRAM);
    assert_eq!(recv(&b).await.0, big);
    let e = a
        .send_to(&vec![0u8; MAX_DATAGRAM + 1], b.local_addr())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    a.send_to(b"0123456789", b.local_addr()).unwrap();
    let mut short = [0u8; 4];
    let (n, from) = soon("recv_from", b.recv_from(&mut short)).await.unwrap();
    assert_eq!((&short[..n], from), (&b"0123"[..], a.local_addr()));
    // The rest of it is gone, not delivered as another datagram.
    a.send_to(b"next", b.local_addr()).unwrap();
    assert_eq!(recv(&b).await.0, b"next");
}

/// A datagram to an address nobody binds is lost, not an error.
async fn datagram_to_nobody_is_lost<T: Transport>(t: T) {
    let a = t.bind(any_port()).await.unwrap();
    let gone = t.bind(any_port()).await.unwrap();
    let to = gone.local_addr();
    drop(gone);
    assert_eq!(a.send_to(b"lost", to).unwrap(), 4);
}

/// One exchange on a stream opened by `client` to `server`.
async fn exchange_once<S: Socket>(client: &S, server: &S) {
    let mut out = soon("connect", client.connect(server.local_addr()))
        .await
        .unwrap();
    out.write_all(b"push").await.unwrap();
    let (mut inc, from) = soon("accept", server.accept()).await.unwrap();
    assert_eq!(from.ip(), client.local_addr().ip());
    let mut got = [0u8; 4];
    soon("read", inc.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"push");
    inc.write_all(b"pull").await.unwrap();
    soon("read", out.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"pull");
}

/// Streams open in both directions and carry bytes both ways.
async fn streams_both_directions<T: Transport>(t: T) {
    let a = t.bind(any_port()).await.unwrap();
    let b = t.bind(any_port()).await.unwrap();
    exchange_once(&a, &b).await;
    exchange_once(&b, &a).await;
}

/// Shutting down the write half is end of stream for the peer, which can
/// still answer; dropping a stream ends it for the peer too.
async fn stream_end_and_close<T: Transport>(t: T) {
    let a = t.bind(any_port()).await.unwrap();
    let b = t.bind(any_port()).await.unwrap();
    let mut out = soon("connect", a.connect(b.local_addr())).await.unwrap();
    let payload = vec![7u8; 200_000];
    let (mut inc, _) = soon("accept", b.accept()).await.unwrap();
    let writer = async {
        out.write_all(&payload).await.unwrap();
        out.shutdown().await.unwrap();
        out
    };
    let reader = async {
        let mut got = Vec::new();
        inc.read_to_end(&mut got).await.unwrap();
        got
    };
    let (mut out, got) = soon("transfer", async { tokio::join!(writer, reader) }).await;
    assert_eq!(got, payload);
    // Half-closed: the other direction still works.
    inc.write_all(b"reply").await.unwrap();
    drop(inc);
    let mut back = Vec::new();
    soon("read", out.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back, b"reply");
}

/// Connecting where nobody listens is refused at once.
async fn connect_to_nobody_is_refused<T: Transport>(t: T) {
    let a = t.bind(any_port()).await.unwrap();
    let gone = t.bind(any_port()).await.unwrap();
    let to = gone.local_addr();
    drop(gone);
    let e = soon("connect", a.connect(to)).await.err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
}

/// Many streams open at once stay apart, whatever order they are
/// accepted and answered in.
async fn concurrent_streams<T: Transport>(t: T) {
    let a = t.bind(any_port()).await.unwrap();
    let b = t.bind(any_port()).await.unwrap();
    let mut outs = Vec::new();
    for i in 0..16u8 {
        let mut s = soon("connect", a.connect(b.local_addr())).await.unwrap();
        s.write_all(&[i; 100]).await.unwrap();
        outs.push(s);
    }
    let mut ins = Vec::new();
    for _ in 0..16 {
        ins.push(soon("accept", b.accept()).await.unwrap().0);
    }
    // Answer in reverse order, echoing what each one sent, plus one.
    for s in ins.iter_mut().rev() {
        let mut got = [0u8; 100];
        soon("read", s.read_exact(&mut got)).await.unwrap();
        s.write_all(&[got[0] + 1; 100]).await.unwrap();
    }
    for (i, s) in outs.iter_mut().enumerate() {
        let mut got = [0u8; 100];
        soon("read", s.read_exact(&mut got)).await.unwrap();
        assert_eq!(got, [i as u8 + 1; 100]);
    }
}

/// Dropping a socket frees its address for a new one.
async fn drop_releases_the_address<T: Transport>(t: T) {
    let a = t.bind(any_port()).await.unwrap();
    let addr = a.local_addr();
    drop(a);
    let again = t.bind(addr).await.unwrap();
    assert_eq!(again.local_addr(), addr);
    let c = t.bind(any_port()).await.unwrap();
    exchange_once(&c, &again).await;
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod net {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::NetTransport).await;
            })*
        }
        mod mem {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::MemNetwork::new()).await;
            })*
        }
    };
}

conformance!(
    bind_picks_a_port,
    datagrams_arrive_with_their_source,
    datagram_size_limits,
    datagram_to_nobody_is_lost,
    streams_both_directions,
    stream_end_and_close,
    connect_to_nobody_is_refused,
    concurrent_streams,
    drop_releases_the_address,
);

/// The twin only: an isolated address loses datagrams and leaves
/// connections hanging until healed.
#[tokio::test(start_paused = true)]
async fn mem_isolate_and_heal() {
    let t = MemNetwork::new();
    let a = t.bind(any_port()).await.unwrap();
    let b = t.bind(any_port()).await.unwrap();
    t.isolate(b.local_addr());
    a.send_to(b"lost", b.local_addr()).unwrap();
    let hang = tokio::time::timeout(Duration::from_secs(30), a.connect(b.local_addr())).await;
    assert!(hang.is_err(), "a connection to an isolated address hangs");
    t.heal(b.local_addr());
    a.send_to(b"found", b.local_addr()).unwrap();
    assert_eq!(
        recv(&b).await.0,
        b"found",
        "the datagram sent while cut is lost"
    );
    exchange_once(&a, &b).await;
}
