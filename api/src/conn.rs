//! The gRPC listener's connections: TCP with Nagle's algorithm off, whose
//! writes h2 gathers into one buffer.
//!
//! h2 copies a DATA frame's payload into its write buffer only below a
//! threshold: 256 bytes on a socket that takes vectored writes, 1,024 on one
//! that does not. A larger payload is chained behind the buffer, and h2 then
//! writes the two out before it encodes another frame. So a unary reply of
//! 256 to 1,024 bytes (a trade is about 400) took two writes, its headers and
//! message and then its trailers, and woke the client twice; and under load
//! each such reply ended a write, where the replies ready beside it could
//! have shared one. Saying "no vectored writes" raises the threshold: up to
//! 1 KiB the message is copied, and a reply, its trailers and the replies
//! ready with it go out in one write.
//!
//! A larger payload is still chained, and without vectored writes h2 hands
//! over its buffer and the payload one after the other. [`Conn`] holds what
//! it is handed (up to [`GATHER_MAX`]) until h2 flushes, so those pieces too
//! leave in one write, as `writev` sent them before.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The most [`Conn`] holds before it writes; a larger piece goes straight
/// to the socket, after what is held.
pub const GATHER_MAX: usize = 32 * 1024;

/// What a connection keeps allocated between flushes: a burst of large
/// replies does not pin a large buffer to an idle connection.
const KEEP_CAPACITY: usize = 4 * 1024;

/// An accepted gRPC connection (see the module comment). Generic for tests.
pub struct Conn<T = TcpStream> {
    io: T,
    /// Bytes h2 handed over and the socket has not taken yet.
    held: Vec<u8>,
    /// How much of `held` the socket has taken.
    sent: usize,
}

impl<T> Conn<T> {
    /// Wraps an accepted stream.
    #[must_use]
    pub fn new(io: T) -> Self {
        Self {
            io,
            held: Vec::new(),
            sent: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> Conn<T> {
    /// Writes what is held; `Ready(Ok)` once all of it is out.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        if self.held.capacity() > KEEP_CAPACITY {
            self.held = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl Connected for Conn<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Conn<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Conn<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.held.len() + buf.len() > GATHER_MAX {
            ready!(me.poll_drain(cx))?;
        }
        if buf.len() > GATHER_MAX {
            return Pin::new(&mut me.io).poll_write(cx, buf);
        }
        me.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A sink that records each write it takes, taking at most `per_write`
    /// bytes of one (a socket with little room left).
    #[derive(Default)]
    struct Writes {
        taken: Vec<Vec<u8>>,
        per_write: Option<usize>,
        flushes: usize,
        shut: bool,
    }

    impl AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let me = self.get_mut();
            let n = me.per_write.map_or(buf.len(), |m| m.min(buf.len()));
            me.taken.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    fn all(w: &Writes) -> Vec<u8> {
        w.taken.concat()
    }

    #[tokio::test]
    async fn pieces_handed_over_before_a_flush_leave_in_one_write() {
        let mut c = Conn::new(Writes::default());
        assert!(!c.is_write_vectored(), "h2 must copy payloads up to 1 KiB");
        c.write_all(b"headers+message").await.unwrap();
        c.write_all(&[7u8; 900]).await.unwrap();
        c.write_all(b"trailers").await.unwrap();
        assert!(c.io.taken.is_empty(), "nothing is written before the flush");
        c.flush().await.unwrap();
        assert_eq!(c.io.taken.len(), 1, "one write for the three pieces");
        assert_eq!(c.io.flushes, 1);
        let mut want = b"headers+message".to_vec();
        want.extend_from_slice(&[7u8; 900]);
        want.extend_from_slice(b"trailers");
        assert_eq!(all(&c.io), want);
        assert!(c.held.is_empty() && c.sent == 0);
    }

    #[tokio::test]
    async fn a_socket_taking_part_of_a_write_gets_the_rest_in_order() {
        let mut c = Conn::new(Writes {
            per_write: Some(100),
            ..Writes::default()
        });
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1_000).collect();
        c.write_all(&bytes).await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(c.io.taken.len(), 10);
        assert_eq!(all(&c.io), bytes);
    }

    #[tokio::test]
    async fn more_than_the_gather_limit_writes_what_is_held_first() {
        let mut c = Conn::new(Writes::default());
        c.write_all(b"first").await.unwrap();
        let big = vec![1u8; GATHER_MAX];
        c.write_all(&big).await.unwrap();
        // "first" could not hold the big piece beside it: it went out alone.
        assert_eq!(c.io.taken, vec![b"first".to_vec()]);
        let huge = vec![2u8; GATHER_MAX + 1];
        c.write_all(&huge).await.unwrap();
        // The held piece first, then the one too large to hold, straight.
        assert_eq!(c.io.taken.len(), 3);
        assert_eq!(c.io.taken[1], big);
        assert_eq!(c.io.taken[2], huge);
        c.flush().await.unwrap();
        assert_eq!(c.io.taken.len(), 3, "nothing left to write");
        assert!(
            c.held.capacity() <= KEEP_CAPACITY,
            "the big buffer was let go"
        );
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_held_before_closing() {
        let mut c = Conn::new(Writes::default());
        c.write_all(b"goaway").await.unwrap();
        c.shutdown().await.unwrap();
        assert_eq!(all(&c.io), b"goaway");
        assert!(c.io.shut);
    }

    #[tokio::test]
    async fn over_loopback_the_peer_reads_what_was_flushed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"ping").await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let mut c = Conn::new(tcp);
        assert_eq!(c.connect_info().remote_addr, c.io.peer_addr().ok());
        let mut ping = [0u8; 4];
        c.read_exact(&mut ping).await.unwrap();
        assert_eq!(&ping, b"ping");
        c.write_all(b"po").await.unwrap();
        c.write_all(b"ng").await.unwrap();
        c.flush().await.unwrap();
        c.shutdown().await.unwrap();
        assert_eq!(client.await.unwrap(), b"pong");
    }
}
