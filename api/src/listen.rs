//! How `otcd` accepts connections on its three listeners (gRPC, gateways,
//! console): a budget of open connections for each ([`Budgets`]:
//! `--connections-max` for gRPC, an eighth of it for each of the others),
//! within the process's open-file limit.
//!
//! Every connection holds a file descriptor, and so do the journal's
//! segments, sled and a staged bill. Without a bound, a client opening
//! connections until the process runs out of descriptors would stop the
//! journal from opening its next segment (the writer stops: fail-stop) and
//! every listener from accepting. So at start the soft open-file limit is
//! raised (within the hard one) to what the budgets need, and the budgets
//! fitted below it with [`FILES_RESERVED`] to spare; past its budget, a new
//! connection is accepted and closed at once (the client sees the
//! connection closed, as behind a full load balancer), counted in
//! `otc_connections_refused_total` and logged at most every
//! [`REFUSED_LOG_EVERY`]. Each listener has its own budget, so a flood on
//! the gateway's or the console's port never takes trading's places. An
//! accept that fails (the limit reached all the same, or the kernel out of
//! memory) is retried after [`ACCEPT_BACKOFF`], not in a busy loop. A
//! connection whose peer sends too little within [`FIRST_BYTES_WITHIN`] is
//! closed, so silent sockets do not hold a place; the gateway's routes also
//! bound a body's arrival ([`crate::http::BODY_WITHIN`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Open files kept for everything but connections: the journal's segments,
/// sled's files, snapshots, a staged bill, the listeners themselves.
pub const FILES_RESERVED: u64 = 256;

/// How long a listener waits after a failed accept.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a new connection may take to send its first [`FIRST_BYTES`]: a
/// socket that stays silent, or sends a byte and stops (a client sends its
/// request, or HTTP/2's preface, at once), does not keep its place in the
/// budget.
pub const FIRST_BYTES_WITHIN: Duration = Duration::from_secs(10);

/// HTTP/2's preface; any HTTP/1 request line with its `Host` is longer.
pub const FIRST_BYTES: usize = 24;

/// How long an HTTP/1 request's headers may take on the gateway and
/// console listeners (also how long a kept-alive connection waits for its
/// next request): a peer sending its headers a byte at a time does not keep
/// its place either.
pub const HEADERS_WITHIN: Duration = Duration::from_secs(30);

/// The least time between two log lines about refused connections.
pub const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit to what `wanted` connections and
/// [`FILES_RESERVED`] need, within the hard limit: how many connections fit
/// below it (`wanted`, or fewer).
///
/// # Errors
/// The limit leaves no room for any connection.
fn fit_open_files(wanted: usize) -> Result<usize, String> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // As many as wanted, within the hard limit (`None`: unlimited).
    let needed = u64::try_from(wanted)
        .unwrap_or(u64::MAX)
        .saturating_add(FILES_RESERVED);
    let target = limit.maximum.map_or(needed, |hard| hard.min(needed));
    let mut current = limit.current;
    if current.is_some_and(|soft| soft < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => current = Some(target),
            Err(e) => tracing::warn!("cannot raise the open-file limit to {target}: {e}"),
        }
    }
    let Some(files) = current else {
        return Ok(wanted);
    };
    let room = usize::try_from(files.saturating_sub(FILES_RESERVED)).unwrap_or(usize::MAX);
    if room == 0 {
        return Err(format!(
            "the process may open only {files} files (ulimit -n), too few to serve \
             connections beside the {FILES_RESERVED} the store keeps for itself"
        ));
    }
    Ok(room.min(wanted))
}

/// Open connections each listener may hold: gRPC's, and the gateway's and
/// the console's (each its own, so a flood on one port never takes the
/// places trading needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// The gRPC listener (`--connections-max`).
    pub grpc: usize,
    /// The gateway listener and the console's, each.
    pub side: usize,
}

impl Budgets {
    /// `grpc_max` gRPC connections and an eighth of that (16 to 1,024) for
    /// each of the other two listeners, fitted to the open-file limit
    /// (raised, within its hard limit, to hold them); when it is lower, gRPC
    /// keeps at least four fifths of what fits.
    ///
    /// # Errors
    /// `grpc_max` is zero, or the limit leaves no room for any connection.
    pub fn fit(grpc_max: usize) -> Result<Self, String> {
        if grpc_max == 0 {
            return Err("connections_max must be at least 1".into());
        }
        let side = (grpc_max / 8).clamp(16, 1024);
        let fits = fit_open_files(grpc_max.saturating_add(2 * side))?;
        let budgets = Self::split(grpc_max, side, fits);
        if budgets.grpc < grpc_max {
            tracing::warn!(
                grpc = budgets.grpc,
                gateway_and_console_each = budgets.side,
                asked = grpc_max,
                "--connections-max lowered to fit the open-file limit (ulimit -n)"
            );
        }
        Ok(budgets)
    }

    /// `grpc_max` and `side` as asked if `fits` holds them all; else gRPC
    /// keeps at least four fifths of `fits`.
    fn split(grpc_max: usize, side: usize, fits: usize) -> Self {
        if fits >= grpc_max.saturating_add(2 * side) {
            return Self {
                grpc: grpc_max,
                side,
            };
        }
        let side = side.min(fits / 10).max(1);
        Self {
            grpc: fits.saturating_sub(2 * side).max(1),
            side,
        }
    }
}

/// The budget of open connections of one listener.
#[derive(Debug)]
pub struct Connections {
    permits: Arc<Semaphore>,
    max: usize,
    /// When the last refusal was logged.
    logged: Mutex<Option<Instant>>,
}

impl Connections {
    /// A budget of `max` open connections.
    #[must_use]
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.min(Semaphore::MAX_PERMITS);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            logged: Mutex::new(None),
        })
    }

    /// Connections open now.
    #[must_use]
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }

    /// `tcp` with its place in the budget, or `None` (and `tcp` closed)
    /// when there is none.
    pub fn admit(&self, tcp: TcpStream, listener: &'static str) -> Option<Admitted> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Some(Admitted {
                tcp,
                _permit: permit,
                first_bytes: Some((Box::pin(tokio::time::sleep(FIRST_BYTES_WITHIN)), 0)),
            });
        }
        drop(tcp);
        metrics::counter!("otc_connections_refused_total", "listener" => listener).increment(1);
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if logged.is_none_or(|at| at.elapsed() >= REFUSED_LOG_EVERY) {
            *logged = Some(Instant::now());
            tracing::warn!(
                listener,
                connections_max = self.max,
                "connections refused: --connections-max are open"
            );
        }
        None
    }

    /// The next connection on `listener` that fits the budget, each set up
    /// by `setup` (Nagle off, keepalive). Failed accepts wait
    /// [`ACCEPT_BACKOFF`] and are retried.
    pub async fn accept(
        &self,
        listener: &TcpListener,
        name: &'static str,
        setup: &(dyn Fn(&TcpStream) + Send + Sync),
    ) -> (Admitted, std::net::SocketAddr) {
        loop {
            match listener.accept().await {
                Ok((tcp, addr)) => {
                    setup(&tcp);
                    if let Some(admitted) = self.admit(tcp, name) {
                        return (admitted, addr);
                    }
                }
                // The connection went before it was taken: the next.
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::warn!(listener = name, "accept failed: {e}; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// An accept error about that one connection, not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::TimedOut
    )
}

/// An accepted connection holding its place in the budget until dropped;
/// closed if its peer sends less than [`FIRST_BYTES`] within
/// [`FIRST_BYTES_WITHIN`].
#[derive(Debug)]
pub struct Admitted {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Until the first [`FIRST_BYTES`] come: the deadline and how many
    /// came so far.
    first_bytes: Option<(Pin<Box<tokio::time::Sleep>>, usize)>,
}

impl Connected for Admitted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp.connect_info()
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let Some((deadline, came)) = &mut this.first_bytes {
            match read {
                Poll::Ready(Ok(())) => {
                    let new = &buf.filled()[before..];
                    *came += new.len();
                    // HTTP/2's preface whole, or an HTTP/1 request line
                    // (then its headers have their own deadline).
                    if *came >= FIRST_BYTES || new.contains(&b'\n') {
                        this.first_bytes = None;
                    }
                }
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer sent too little after connecting",
                    )));
                }
                _ => {}
            }
        }
        read
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A listener served by [`serve_http`] (the gateway's and the console's),
/// its connections within its budget.
pub struct Limited {
    /// The bound socket.
    pub listener: TcpListener,
    /// Its budget.
    pub connections: Arc<Connections>,
    /// For logs and metrics.
    pub name: &'static str,
    /// Applied to each accepted socket.
    pub setup: Box<dyn Fn(&TcpStream) + Send + Sync>,
    /// HTTP/1 only: the gateway's listener, whose peers post one small body
    /// at a time; HTTP/2 would let one connection hold many stalled bodies.
    pub http1_only: bool,
}

/// Serves `app` on `listener` (HTTP/1 with [`HEADERS_WITHIN`]; unless
/// [`Limited::http1_only`], HTTP/2 with pings every `keepalive.0`, answered
/// within `keepalive.1`, and upgrades) until
/// `closing` turns true; then stops accepting, tells each connection to
/// finish what it is doing, and waits for them. axum's own `serve` sets no
/// timer, so it could not bound a request's headers. Failed accepts are
/// retried ([`Connections::accept`]), so this ends only at `closing`.
pub async fn serve_http(
    listener: Limited,
    app: axum::Router,
    keepalive: (Duration, Duration),
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    let mut builder = Builder::new(TokioExecutor::new());
    if listener.http1_only {
        builder = builder.http1_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADERS_WITHIN);
    // An HTTP/2 connection (prior knowledge) is pinged as on the gRPC
    // listener: one whose peer went quiet after its preface is closed.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(keepalive.0)
        .keep_alive_timeout(keepalive.1);
    // Each connection's task holds a sender: all gone, all ended.
    let (open, mut all_ended) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.connections.accept(&listener.listener, listener.name, &*listener.setup) => accepted,
            () = closed(&mut closing) => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let mut closing = closing.clone();
        let open = open.clone();
        // Served until it ends, or told to finish at `closing`.
        macro_rules! until_closing {
            ($conn:expr) => {{
                let mut conn = std::pin::pin!($conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = closed(&mut closing) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.as_mut().await;
                    }
                }
            }};
        }
        let http1_only = listener.http1_only;
        tokio::spawn(async move {
            let io = TokioIo::new(io);
            // hyper-util keeps to HTTP/1 only without upgrades.
            if http1_only {
                until_closing!(builder.serve_connection(io, service));
            } else {
                until_closing!(builder.serve_connection_with_upgrades(io, service));
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open);
    let _ = all_ended.recv().await;
}

/// Once `closing` turns true (or its sender is gone).
async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// The gRPC listener's connections as tonic takes them: accepted in a task
/// of their own (stopped when tonic drops the stream at shutdown, which
/// closes the listening socket), each fitted to the budget and set up by
/// `setup`.
pub fn incoming<T: Send + 'static>(
    listener: TcpListener,
    connections: Arc<Connections>,
    setup: impl Fn(&TcpStream) + Send + Sync + 'static,
    wrap: impl Fn(Admitted) -> T + Send + 'static,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<T>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => return,
                accepted = connections.accept(&listener, "grpc", &setup) => accepted,
            };
            if tx.send(Ok(wrap(accepted.0))).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_budget_connections_are_closed_until_one_ends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Connections::new(2);
        let mut clients = Vec::new();
        let mut held = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.expect("connect"));
        }
        for _ in 0..3 {
            let (tcp, _) = listener.accept().await.expect("accept");
            held.extend(connections.admit(tcp, "test"));
        }
        assert_eq!(held.len(), 2);
        assert_eq!(connections.open(), 2);
        // The third was closed: its client reads the end.
        let mut third = clients.pop().expect("third");
        let mut buf = [0u8; 1];
        let n = tokio::io::AsyncReadExt::read(&mut third, &mut buf)
            .await
            .unwrap_or(0);
        assert_eq!(n, 0, "the refused connection is closed");
        // One ends; the next fits.
        held.pop();
        assert_eq!(connections.open(), 1);
        let _again = TcpStream::connect(addr).await.expect("connect");
        let (tcp, _) = listener.accept().await.expect("accept");
        let fits = connections.admit(tcp, "test");
        assert!(fits.is_some());
        assert_eq!(connections.open(), 2);
    }

    #[test]
    fn each_listener_has_its_budget_and_grpc_keeps_most_of_a_low_limit() {
        let asked = Budgets::fit(10_000).expect("fits here");
        assert_eq!(
            asked,
            Budgets {
                grpc: 10_000,
                side: 1_024
            }
        );
        assert_eq!(Budgets::fit(3).expect("fits").side, 16);
        assert!(Budgets::fit(0).is_err());
        // A limit that holds 1,000 connections: gRPC keeps 800.
        assert_eq!(
            Budgets::split(10_000, 1_024, 1_000),
            Budgets {
                grpc: 800,
                side: 100
            }
        );
        assert_eq!(
            Budgets::split(10_000, 1_024, 3),
            Budgets { grpc: 1, side: 1 }
        );
    }

    #[test]
    fn the_budget_fits_the_open_file_limit() {
        let fitted = fit_open_files(usize::MAX).expect("some room");
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        match limit.current {
            Some(files) => {
                // Raised as far as the hard limit lets, and the reserve kept.
                assert_eq!(limit.current, limit.maximum);
                assert_eq!(fitted as u64, files - FILES_RESERVED);
            }
            None => assert_eq!(fitted, usize::MAX),
        }
        assert_eq!(fit_open_files(10).expect("fits"), 10);
    }
}
