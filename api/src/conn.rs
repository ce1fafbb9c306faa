//! The gRPC listener's connections (TCP with Nagle's algorithm off, by
//! [`crate::server::nodelay`]), gathering what h2 writes into one write.
//!
//! h2 copies a DATA frame's payload into its write buffer only below a
//! threshold: 256 bytes on a socket that takes vectored writes, 1,024 on one
//! that does not. A payload at or over it is chained behind the buffer, and
//! h2 writes the two out before it encodes another frame. So a unary reply
//! of 256 bytes to 1 KiB (a trade is about 400) took two writes, its headers
//! and message and then its trailers, and woke the client twice; and under
//! load each such reply ended a write where the replies ready beside it could
//! have shared one. Saying "no vectored writes" raises the threshold: below
//! 1 KiB the message is copied, and a reply, its trailers and the replies
//! ready with it go out in one write.
//!
//! A larger payload is still chained, and without vectored writes h2 hands
//! over its buffer and then the payload. [`Conn`] holds (copies) what it is
//! handed until h2 flushes; a piece of [`DIRECT_MIN`] or more that comes
//! while bytes are held (a chained payload behind its frame header) goes out
//! at once with them in one vectored write, not copied when the socket takes
//! it whole: a large reply or an attachment's 16 KiB frames leave as
//! `writev` sent them before.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::Connected;

/// A piece at least this long that comes while bytes are held goes out at
/// once behind them: h2 chains payloads this long behind their frame header
/// rather than copy them (h2 0.4's `CHAIN_THRESHOLD_WITHOUT_VECTORED_IO`).
/// Other pieces are held until the flush, unless the held bytes would pass
/// [`GATHER_MAX`].
pub const DIRECT_MIN: usize = 1024;

/// The most [`Conn`] holds before it writes.
pub const GATHER_MAX: usize = 32 * 1024;

/// The most a connection keeps allocated between flushes: a burst of large
/// writes does not pin a large buffer to an idle connection.
const KEEP_CAPACITY: usize = 8 * 1024;

/// An accepted gRPC connection (see the module comment). Generic for tests.
pub struct Conn<T = TcpStream> {
    io: T,
    /// Bytes h2 handed over since the last drain: `held[sent..]` are not
    /// written yet.
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

    /// Forgets the held bytes once all are out.
    fn reset_held(&mut self) {
        self.held.clear();
        self.sent = 0;
        self.held.shrink_to(KEEP_CAPACITY);
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
        self.reset_held();
        Poll::Ready(Ok(()))
    }

    /// Writes what is held and then `buf`, in one vectored write where the
    /// socket takes it; `Ready(n)` once `n > 0` bytes of `buf` are out.
    fn poll_behind_held(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        while self.sent < self.held.len() {
            let held = &self.held[self.sent..];
            let slices = [IoSlice::new(held), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n > held.len() {
                let taken = n - held.len();
                self.reset_held();
                return Poll::Ready(Ok(taken));
            }
            self.sent += n;
        }
        self.reset_held();
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
}

impl<T: Connected> Connected for Conn<T> {
    type ConnectInfo = T::ConnectInfo;

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
        let holding = me.sent < me.held.len();
        let fits = me.held.len() + buf.len() <= GATHER_MAX;
        if (holding && buf.len() >= DIRECT_MIN) || !fits {
            // A chained payload behind its frame header, or too much to hold.
            return me.poll_behind_held(cx, buf);
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
    use std::future::poll_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A socket that records each write it takes (a vectored one as one
    /// write), taking at most `per_write` bytes of one; it can refuse the
    /// next writes (`Pending`, waking at once) or fail them.
    #[derive(Default)]
    struct Writes {
        taken: Vec<Vec<u8>>,
        per_write: Option<usize>,
        /// After this many more writes taken, refuse one with `Pending`.
        busy_after: Option<usize>,
        fail: Option<io::ErrorKind>,
        /// Each vectored write's slice count and its last slice's address.
        vectored: Vec<(usize, usize)>,
        flushes: usize,
        shut: bool,
    }

    impl Writes {
        fn take(&mut self, cx: &mut Context<'_>, bytes: Vec<u8>) -> Poll<io::Result<usize>> {
            if let Some(kind) = self.fail {
                return Poll::Ready(Err(kind.into()));
            }
            match self.busy_after {
                Some(0) => {
                    self.busy_after = None;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Some(n) => self.busy_after = Some(n - 1),
                None => {}
            }
            let n = self.per_write.map_or(bytes.len(), |m| m.min(bytes.len()));
            self.taken.push(bytes[..n].to_vec());
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().take(cx, buf.to_vec())
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let me = self.get_mut();
            let last = bufs.last().map_or(0, |b| b.as_ptr() as usize);
            let taken = me.take(cx, bufs.iter().flat_map(|b| b.iter().copied()).collect());
            if taken.is_ready() {
                me.vectored.push((bufs.len(), last));
            }
            taken
        }
        fn is_write_vectored(&self) -> bool {
            true
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

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    #[tokio::test]
    async fn pieces_handed_over_before_a_flush_leave_in_one_write() {
        let mut c = Conn::new(Writes::default());
        assert!(!c.is_write_vectored(), "h2 must copy payloads below 1 KiB");
        c.write_all(b"headers+message").await.unwrap();
        c.write_all(&bytes(900, 7)).await.unwrap();
        c.write_all(b"trailers").await.unwrap();
        assert!(c.io.taken.is_empty(), "nothing is written before the flush");
        c.flush().await.unwrap();
        assert_eq!(c.io.taken.len(), 1, "one write for the three pieces");
        assert_eq!(c.io.flushes, 1);
        assert_eq!(
            all(&c.io),
            [
                b"headers+message".to_vec(),
                bytes(900, 7),
                b"trailers".to_vec()
            ]
            .concat()
        );
        assert!(c.held.is_empty() && c.sent == 0);
    }

    #[tokio::test]
    async fn a_chained_payload_leaves_with_its_header_in_one_write_uncopied() {
        let mut c = Conn::new(Writes::default());
        // As h2 hands over a 16 KiB attachment frame: its buffer, then the
        // payload chained behind it.
        c.write_all(b"frame header").await.unwrap();
        let payload = bytes(16 * 1024, 3);
        c.write_all(&payload).await.unwrap();
        assert_eq!(
            c.io.taken.len(),
            1,
            "header and payload in one vectored write"
        );
        assert_eq!(
            c.io.vectored,
            vec![(2, payload.as_ptr() as usize)],
            "the payload went out from h2's own bytes, not a copy"
        );
        assert_eq!(all(&c.io), [b"frame header".to_vec(), payload].concat());
        assert!(c.held.capacity() <= KEEP_CAPACITY);
        // A large buffer with nothing held yet is held like any other.
        let head = bytes(4 * 1024, 9);
        c.write_all(&head).await.unwrap();
        assert_eq!(c.io.taken.len(), 1);
        c.flush().await.unwrap();
        assert_eq!(c.io.taken.len(), 2);
        assert_eq!(c.io.taken[1], head);
    }

    #[tokio::test]
    async fn a_socket_taking_part_of_a_write_gets_the_rest_in_order() {
        let mut c = Conn::new(Writes {
            per_write: Some(100),
            ..Writes::default()
        });
        let small = bytes(1_000, 0);
        c.write_all(&small).await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(c.io.taken.len(), 10);
        assert_eq!(all(&c.io), small);
        // Behind held bytes, a short vectored write takes them first.
        c.write_all(b"head").await.unwrap();
        let payload = bytes(2_000, 5);
        c.write_all(&payload).await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(all(&c.io), [small, b"head".to_vec(), payload].concat());
    }

    #[tokio::test]
    async fn a_busy_socket_mid_drain_keeps_order_and_loses_nothing() {
        let mut c = Conn::new(Writes {
            per_write: Some(3),
            busy_after: Some(1),
            ..Writes::default()
        });
        c.write_all(b"abcdefgh").await.unwrap();
        // The socket takes 3 bytes, then is busy: the flush waits with part
        // of the held bytes out.
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut c).poll_flush(cx))).await;
        assert!(first.is_pending(), "a busy socket makes the flush wait");
        assert_eq!(c.sent, 3, "part of the held bytes went out");
        // More comes while bytes are held: a short piece is held behind
        // them, a long one goes out behind them.
        c.write_all(b"ij").await.unwrap();
        c.write_all(&bytes(1_500, 1)).await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(
            all(&c.io),
            [b"abcdefghij".to_vec(), bytes(1_500, 1)].concat()
        );
        assert!(c.held.is_empty() && c.sent == 0);
    }

    #[tokio::test]
    async fn a_piece_of_direct_min_goes_out_while_one_byte_shorter_is_held() {
        let mut c = Conn::new(Writes::default());
        c.write_all(b"h").await.unwrap();
        c.write_all(&bytes(DIRECT_MIN - 1, 1)).await.unwrap();
        assert!(c.io.taken.is_empty(), "below DIRECT_MIN: held");
        c.write_all(&bytes(DIRECT_MIN, 2)).await.unwrap();
        assert_eq!(
            c.io.taken.len(),
            1,
            "DIRECT_MIN: out at once, behind the held"
        );
        assert_eq!(
            all(&c.io),
            [
                b"h".to_vec(),
                bytes(DIRECT_MIN - 1, 1),
                bytes(DIRECT_MIN, 2)
            ]
            .concat()
        );
    }

    #[tokio::test]
    async fn a_socket_taking_exactly_the_held_bytes_then_the_piece() {
        // The socket takes 4 bytes a write: exactly "head", then the piece.
        let mut c = Conn::new(Writes {
            per_write: Some(4),
            ..Writes::default()
        });
        c.write_all(b"head").await.unwrap();
        let payload = bytes(2_000, 6);
        c.write_all(&payload).await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(all(&c.io), [b"head".to_vec(), payload].concat());
    }

    #[tokio::test]
    async fn a_busy_socket_behind_held_bytes_loses_and_repeats_nothing() {
        let payload = bytes(2_000, 8);
        // Busy at the first vectored write, then after the held bytes are out.
        for (per_write, busy_after) in [(None, 0), (Some(4), 1)] {
            let mut c = Conn::new(Writes {
                per_write,
                busy_after: Some(busy_after),
                ..Writes::default()
            });
            c.write_all(b"head").await.unwrap();
            c.write_all(&payload).await.unwrap();
            c.flush().await.unwrap();
            assert_eq!(all(&c.io), [b"head".to_vec(), payload.clone()].concat());
            assert!(c.held.is_empty() && c.sent == 0);
        }
    }

    #[tokio::test]
    async fn errors_and_a_socket_taking_nothing_are_reported() {
        let mut c = Conn::new(Writes::default());
        c.write_all(b"held").await.unwrap();
        c.io.fail = Some(io::ErrorKind::BrokenPipe);
        let e = c.flush().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let e = c.write_all(&bytes(2_000, 0)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let mut c = Conn::new(Writes {
            per_write: Some(0),
            ..Writes::default()
        });
        c.write_all(b"held").await.unwrap();
        let e = c.write_all(&bytes(2_000, 0)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero, "behind held bytes");
        let e = c.flush().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero, "draining");
    }

    #[tokio::test]
    async fn more_than_the_gather_limit_writes_what_is_held_first() {
        let mut c = Conn::new(Writes::default());
        c.write_all(b"first").await.unwrap();
        let fill = bytes(GATHER_MAX - 5, 1);
        // Below DIRECT_MIN each: held, up to the limit.
        for piece in fill.chunks(DIRECT_MIN - 1) {
            c.write_all(piece).await.unwrap();
        }
        assert!(c.io.taken.is_empty());
        assert_eq!(c.held.len(), GATHER_MAX);
        c.write_all(b"over").await.unwrap();
        assert_eq!(
            c.io.taken.len(),
            1,
            "the held bytes and the piece, in one write"
        );
        assert_eq!(
            all(&c.io),
            [b"first".to_vec(), fill, b"over".to_vec()].concat()
        );
        let huge = bytes(GATHER_MAX + 1, 2);
        c.write_all(&huge).await.unwrap();
        assert_eq!(c.io.taken.len(), 2, "too large to hold: straight out");
        assert_eq!(c.io.taken[1], huge);
        c.flush().await.unwrap();
        assert_eq!(c.io.taken.len(), 2, "nothing left to write");
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
        let big = bytes(100_000, 4);
        c.write_all(&big).await.unwrap();
        c.flush().await.unwrap();
        c.shutdown().await.unwrap();
        assert_eq!(client.await.unwrap(), [b"pong".to_vec(), big].concat());
    }
}
