//! The relay's TCP listener: accepts connections for axum and tunes each socket for small,
//! latency-sensitive messages.
//!
//! - `TCP_NODELAY`: small replies (OK, EOSE, live events) do not wait for Nagle's algorithm.
//! - `TCP_QUICKACK`, re-armed after every read that returned data (Linux leaves quick-ack mode
//!   on its own): a client message the relay does not answer (CLOSE, a pong) is acknowledged at
//!   once instead of after the delayed-ACK timer (up to 40 ms). Without it a client that leaves
//!   Nagle on — most WebSocket libraries do — and sends CLOSE then REQ back to back holds the
//!   REQ until that late ACK arrives (`relay-bench nagle` measures this round trip).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A [`TcpListener`] whose connections are [`Tuned`].
pub struct Listener(TcpListener);

impl Listener {
    pub fn new(listener: TcpListener) -> Self {
        Self(listener)
    }
}

impl axum::serve::Listener for Listener {
    type Io = Tuned;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Tuned, SocketAddr) {
        // axum's own accept loop: retries, and backs off on errors such as EMFILE.
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.0).await;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        (Tuned { tcp }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A TCP connection that acknowledges received data at once (see the module docs).
pub struct Tuned {
    tcp: TcpStream,
}

impl Tuned {
    fn quickack(&self) {
        #[cfg(target_os = "linux")]
        if let Err(e) = socket2::SockRef::from(&self.tcp).set_tcp_quickack(true) {
            tracing::trace!(error = %e, "cannot set TCP_QUICKACK");
        }
    }
}

impl AsyncRead for Tuned {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.quickack();
        }
        polled
    }
}

impl AsyncWrite for Tuned {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
