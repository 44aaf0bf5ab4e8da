//! Stream tasks: they move bytes and frame them with the core's codec,
//! over whatever streams the [`Socket`] gives.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout_at, Instant};
use tracing::debug;

use super::transport::Socket;
use super::{FromConn, Traffic};
use crate::membership::{StreamCodec, StreamCodecError, StreamRequest};
use crate::wire::{StreamMessage, MAX_PUSH_STATE_BYTES};

/// Hard cap on bytes read for one stream message: the largest push/pull
/// plus room for framing and encryption.
const MAX_STREAM_BYTES: usize = MAX_PUSH_STATE_BYTES + 64 * 1024;

/// Why a stream exchange failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The bytes could not be decoded (or decrypted).
    Codec(StreamCodecError),
    /// Connecting, reading or writing failed, or timed out.
    Io(String),
}

impl From<StreamCodecError> for Failure {
    fn from(e: StreamCodecError) -> Self {
        Failure::Codec(e)
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Io(e)
    }
}

/// Reads one message. Parsing is retried only when the buffer has grown by
/// half since the last try (or the read was short), so a 20 MiB state is not
/// re-parsed for every 64 KiB chunk.
async fn read_message<C: AsyncRead + Unpin>(
    conn: &mut C,
    codec: &StreamCodec,
    inbound: bool,
    deadline: Instant,
    traffic: &Traffic,
) -> Result<Option<StreamMessage>, Failure> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut tried_at = 0usize;
    loop {
        let n = match timeout_at(deadline, conn.read(&mut chunk)).await {
            Err(_) => return Err(Failure::Io("timed out reading the stream".into())),
            Ok(Err(e)) => return Err(Failure::Io(format!("read failed: {e}"))),
            Ok(Ok(n)) => n,
        };
        traffic.tcp_recv.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return match codec.decode(&buf, inbound)? {
                Some((msg, _)) => Ok(Some(msg)),
                None => Err(Failure::Io(format!(
                    "connection closed after {} bytes, in the middle of a message",
                    buf.len()
                ))),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_STREAM_BYTES {
            return Err(Failure::Io(format!(
                "stream message exceeds {MAX_STREAM_BYTES} bytes: refused"
            )));
        }
        if n < chunk.len() || buf.len() >= tried_at + tried_at / 2 {
            tried_at = buf.len();
            if let Some((msg, _)) = codec.decode(&buf, inbound)? {
                return Ok(Some(msg));
            }
        }
    }
}

/// Carries out one outbound stream request.
/// The socket is held only while connecting, so that a stopped node's
/// address is released without waiting for its streams.
pub(super) async fn exchange<S: Socket>(
    socket: Weak<S>,
    req: StreamRequest,
    codec: StreamCodec,
    traffic: &Traffic,
) -> Result<Option<StreamMessage>, Failure> {
    let deadline = Instant::from_std(req.deadline);
    let Some(socket) = socket.upgrade() else {
        return Err(Failure::Io("the node stopped".into()));
    };
    let connected = timeout_at(deadline, socket.connect(req.to)).await;
    drop(socket);
    let mut conn = match connected {
        Err(_) => return Err(Failure::Io(format!("timed out connecting to {}", req.to))),
        Ok(Err(e)) => return Err(Failure::Io(format!("cannot connect to {}: {e}", req.to))),
        Ok(Ok(c)) => c,
    };
    match timeout_at(deadline, conn.write_all(&req.data)).await {
        Err(_) => return Err(Failure::Io(format!("timed out writing to {}", req.to))),
        Ok(Err(e)) => return Err(Failure::Io(format!("write to {} failed: {e}", req.to))),
        Ok(Ok(())) => {}
    }
    traffic
        .tcp_sent
        .fetch_add(req.data.len() as u64, Ordering::Relaxed);
    if !req.expect_reply {
        let _ = conn.shutdown().await;
        return Ok(None);
    }
    read_message(&mut conn, &codec, false, deadline, traffic).await
}

/// Serves one accepted connection: one message in, at most one reply out.
pub(super) async fn serve<C: AsyncRead + AsyncWrite + Unpin>(
    mut conn: C,
    from: SocketAddr,
    codec: StreamCodec,
    timeout: Duration,
    core: mpsc::UnboundedSender<FromConn>,
    traffic: std::sync::Arc<Traffic>,
) {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = oneshot::channel();
    let to_core = match read_message(&mut conn, &codec, true, deadline, &traffic).await {
        Ok(Some(m)) => FromConn::Inbound(from, m, tx),
        Ok(None) => return,
        // The core counts it and answers with an error, as memberlist does.
        Err(Failure::Codec(e)) => FromConn::InboundFailed(from, e, tx),
        Err(Failure::Io(e)) => {
            debug!(%from, error = %e, "refused inbound stream");
            return;
        }
    };
    if core.send(to_core).is_err() {
        return;
    }
    let Ok(Some(reply)) = rx.await else {
        return;
    };
    match timeout_at(deadline, conn.write_all(&reply)).await {
        Ok(Ok(())) => {
            traffic
                .tcp_sent
                .fetch_add(reply.len() as u64, Ordering::Relaxed);
        }
        Ok(Err(e)) => debug!(%from, error = %e, "writing stream reply failed"),
        Err(_) => debug!(%from, "timed out writing stream reply"),
    }
    let _ = conn.shutdown().await;
}
