//! What every call to the otc services passes before its body is read, on
//! the gRPC listener and, as gRPC-Web, on the console's ([`GateLayer`]):
//!
//! - **The caller's token.** Every `otc.v1` method needs one, so a request
//!   without a valid token is answered UNAUTHENTICATED at once, before a byte
//!   of its body (up to an attachment's 5 MiB) is read or held. The caller
//!   found rides in the request's extensions: the handler does not look the
//!   token up again ([`crate::auth::Authenticator::caller`]).
//! - **Room for the body.** A unary request's message is held whole until
//!   its call ends, and an attachment's bytes until the writer has stored
//!   them. Each message's length is known from its gRPC prefix before any of
//!   it is read, so room for the whole message is reserved at once, all or
//!   nothing: the first [`BODY_FREE_BYTES`] of a call's messages from
//!   [`CALL_BYTES_MAX`] (every call's share: more than calls without a file
//!   ever send), the rest from `--uploads-in-flight-max` (uploads). A
//!   message that does not fit fails RESOURCE_EXHAUSTED (naming the flag for
//!   uploads) before its bytes are read; nothing reaches the engine and the
//!   client may retry. So uploads cannot crowd out trading, and neither can
//!   exhaust memory. The reservation lasts until the call ends and, for an
//!   attachment, until its job leaves the writer ([`Hold`]), even if the
//!   client gave up. A client-streamed bill ([`STREAMED_UPLOADS`]) goes to
//!   disk chunk by chunk and is not counted.
//!
//! - **The error's message** is bounded ([`message::cap`]), so the caller
//!   sees the status however much input it echoes.
//!
//! Health checks and reflection need no token and pass untouched.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tonic::Status;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{Bytes, Service};

use dashmap::DashMap;
use otc_engine::UserId;

use crate::auth::Authenticator;

/// Bytes of a call's messages taken from the calls' pool rather than the
/// upload budget: more than any call without an attachment sends.
pub const BODY_FREE_BYTES: u64 = 64 * 1024;

/// The calls' pool: room for 4,096 calls with the largest message that is
/// not an upload, held at once (an ordinary call reserves a few hundred
/// bytes).
pub const CALL_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Of the calls' pool, the most one caller's calls may announce at once:
/// 64 messages as large as a call without a file sends (an ordinary call
/// announces a few hundred bytes), so no one caller can fill the pool.
pub const CALLER_CALL_BYTES_MAX: u64 = 64 * BODY_FREE_BYTES;

/// Of the upload budget, the most one caller may hold: this many of the
/// largest message (an upload's room is given back once the writer has
/// stored it, a moment after its answer).
pub const CALLER_UPLOADS: u64 = 4;

/// Methods whose request is a stream of chunks, each handled as it comes:
/// their bodies are never held whole.
pub const STREAMED_UPLOADS: &[&str] = &["/otc.v1.SupportService/ImportBill"];

/// The services that need a token.
const PROTECTED_PREFIX: &str = "/otc.v1.";

/// The gRPC prefix of each message: a flag byte and a big-endian length.
const PREFIX_BYTES: usize = 5;

/// Bytes of request bodies reserved across all connections, and the most
/// that may be.
#[derive(Debug)]
pub struct Pool {
    max: u64,
    held: AtomicU64,
}

impl Pool {
    /// A pool of `max` bytes.
    #[must_use]
    pub fn new(max: u64) -> Self {
        Self {
            max,
            held: AtomicU64::new(0),
        }
    }

    /// Bytes reserved now.
    #[must_use]
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// Takes `n` bytes if they fit.
    fn take(&self, n: u64) -> bool {
        n == 0
            || self
                .held
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    held.checked_add(n).filter(|after| *after <= self.max)
                })
                .is_ok()
    }

    fn give(&self, n: u64) {
        if n > 0 {
            self.held.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

/// The two pools a body reserves from, and what each caller holds of them.
#[derive(Debug)]
pub struct Budget {
    /// Every call's first [`BODY_FREE_BYTES`].
    pub calls: Pool,
    /// The rest: uploads (`--uploads-in-flight-max`).
    pub uploads: Pool,
    /// Of the upload pool, the most one caller may hold:
    /// [`CALLER_UPLOADS`] largest messages.
    caller_uploads_max: u64,
    /// What each caller holds now (calls' pool, uploads); a caller holding
    /// nothing has no entry.
    by_caller: DashMap<UserId, (u64, u64)>,
}

impl Budget {
    /// Uploads of `uploads_max` bytes at once, beside [`CALL_BYTES_MAX`];
    /// messages of at most `message_max` bytes.
    #[must_use]
    pub fn new(uploads_max: u64, message_max: u64) -> Self {
        Self {
            calls: Pool::new(CALL_BYTES_MAX),
            uploads: Pool::new(uploads_max),
            caller_uploads_max: message_max.saturating_mul(CALLER_UPLOADS),
            by_caller: DashMap::new(),
        }
    }

    /// Takes `calls` and `uploads` bytes for `user`, within the caller's
    /// share and then the pools; all or nothing.
    fn take(&self, user: UserId, calls: u64, uploads: u64) -> Result<(), Status> {
        /// Why a reservation was refused.
        enum Over {
            CallerCalls,
            CallerUploads,
            Calls,
            Uploads,
        }
        let mut mine = self.by_caller.entry(user).or_insert((0, 0));
        let (held_calls, held_uploads) = *mine;
        let over = if held_calls + calls > CALLER_CALL_BYTES_MAX {
            Some(Over::CallerCalls)
        } else if held_uploads + uploads > self.caller_uploads_max {
            Some(Over::CallerUploads)
        } else if !self.calls.take(calls) {
            Some(Over::Calls)
        } else if !self.uploads.take(uploads) {
            self.calls.give(calls);
            Some(Over::Uploads)
        } else {
            *mine = (held_calls + calls, held_uploads + uploads);
            None
        };
        let empty = *mine == (0, 0);
        drop(mine);
        if empty {
            self.by_caller.remove_if(&user, |_, held| *held == (0, 0));
        }
        let (pool, what) = match over {
            None => return Ok(()),
            Some(Over::CallerCalls) => (
                "caller",
                format!(
                    "your calls in flight announce more than {CALLER_CALL_BYTES_MAX} bytes at \
                     once; retry when some have ended"
                ),
            ),
            Some(Over::CallerUploads) => (
                "caller",
                format!(
                    "your uploads in flight hold more than {} bytes at once ({CALLER_UPLOADS} of \
                     the largest message); retry when one has ended, with the same request_id",
                    self.caller_uploads_max
                ),
            ),
            Some(Over::Calls) => (
                "calls",
                "the server is receiving as many calls as it holds at once; retry shortly".into(),
            ),
            Some(Over::Uploads) => (
                "uploads",
                format!(
                    "the server is receiving as many uploads as it holds at once \
                     ({} bytes, --uploads-in-flight-max); retry shortly with the same request_id",
                    self.uploads.max
                ),
            ),
        };
        metrics::counter!("otc_bodies_refused_total", "pool" => pool).increment(1);
        Err(Status::resource_exhausted(what))
    }

    /// Gives back what [`Budget::take`] took.
    fn give(&self, user: UserId, calls: u64, uploads: u64) {
        if calls == 0 && uploads == 0 {
            return;
        }
        self.calls.give(calls);
        self.uploads.give(uploads);
        if let Some(mut mine) = self.by_caller.get_mut(&user) {
            mine.0 = mine.0.saturating_sub(calls);
            mine.1 = mine.1.saturating_sub(uploads);
        }
        self.by_caller.remove_if(&user, |_, held| *held == (0, 0));
    }
}

/// One call's reservation: given back when the last holder lets go (the
/// body, the call's future, and the writer's job for an attachment).
#[derive(Debug)]
struct Share {
    budget: Arc<Budget>,
    user: UserId,
    /// Bytes of the call's messages reserved so far (only the body adds).
    reserved: AtomicU64,
}

/// A call's `reserved` bytes as the pools hold them: (calls', uploads).
fn split(reserved: u64) -> (u64, u64) {
    (
        reserved.min(BODY_FREE_BYTES),
        reserved.saturating_sub(BODY_FREE_BYTES),
    )
}

impl Share {
    fn new(budget: &Arc<Budget>, user: UserId) -> Self {
        Self {
            budget: Arc::clone(budget),
            user,
            reserved: AtomicU64::new(0),
        }
    }

    /// Reserves a message of `len` bytes after the call's earlier ones.
    fn reserve(&self, len: u64) -> Result<(), Status> {
        let before = self.reserved.load(Ordering::Acquire);
        let after = before.saturating_add(len);
        let ((calls_before, uploads_before), (calls, uploads)) = (split(before), split(after));
        self.budget
            .take(self.user, calls - calls_before, uploads - uploads_before)?;
        self.reserved.store(after, Ordering::Release);
        Ok(())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let (calls, uploads) = split(*self.reserved.get_mut());
        self.budget.give(self.user, calls, uploads);
    }
}

/// A call's reservation, for the handler to keep with what it holds past
/// the call (an attachment queued for the writer: [`crate::pipeline`]).
#[derive(Debug, Clone)]
pub struct Hold {
    _share: Arc<Share>,
}

impl Hold {
    /// The reservation the gate made for `req`, if any.
    #[must_use]
    pub fn of<T>(req: &tonic::Request<T>) -> Option<Hold> {
        req.extensions().get::<Hold>().cloned()
    }
}

/// Where a body is in its messages' framing.
#[derive(Debug, Default)]
struct Framing {
    /// The prefix being read.
    prefix: [u8; PREFIX_BYTES],
    have: usize,
    /// Bytes of the current message still to come.
    rest: u64,
}

/// A request body whose messages are reserved as their prefixes arrive.
pub struct Counted<B> {
    inner: B,
    share: Option<Arc<Share>>,
    framing: Framing,
}

impl<B> Counted<B> {
    /// Reads the framing of `data`, reserving each message it announces.
    fn count(&mut self, mut data: &[u8]) -> Result<(), Status> {
        let Some(share) = &self.share else {
            return Ok(());
        };
        let f = &mut self.framing;
        while !data.is_empty() {
            if f.rest > 0 {
                let skip = usize::try_from(f.rest)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                f.rest -= skip as u64;
                data = &data[skip..];
                continue;
            }
            let take = (PREFIX_BYTES - f.have).min(data.len());
            f.prefix[f.have..f.have + take].copy_from_slice(&data[..take]);
            f.have += take;
            data = &data[take..];
            if f.have == PREFIX_BYTES {
                let len = u64::from(u32::from_be_bytes([
                    f.prefix[1],
                    f.prefix[2],
                    f.prefix[3],
                    f.prefix[4],
                ]));
                share.reserve(len + PREFIX_BYTES as u64)?;
                f.rest = len;
                f.have = 0;
            }
        }
        Ok(())
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count(data)?;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Status::from_error(e.into())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Puts [`Gate`] in front of a service.
#[derive(Clone)]
pub struct GateLayer {
    auth: Arc<Authenticator>,
    budget: Arc<Budget>,
    deadline: Option<Duration>,
}

impl GateLayer {
    /// A gate checking tokens with `auth` and reserving bodies in `budget`.
    #[must_use]
    pub fn new(auth: Arc<Authenticator>, budget: Arc<Budget>) -> Self {
        Self {
            auth,
            budget,
            deadline: None,
        }
    }

    /// Also ends a call (but a streamed upload) not answered within
    /// `deadline`, CANCELLED, on both listeners.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            auth: Arc::clone(&self.auth),
            budget: Arc::clone(&self.budget),
            deadline: self.deadline,
        }
    }
}

/// See the module comment.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    auth: Arc<Authenticator>,
    budget: Arc<Budget>,
    deadline: Option<Duration>,
}

impl<S, B, ResBody> Service<Request<B>> for Gate<S>
where
    S: Service<Request<Counted<B>>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        if !path.starts_with(PROTECTED_PREFIX) {
            let req = req.map(|inner| Counted {
                inner,
                share: None,
                framing: Framing::default(),
            });
            return Box::pin(self.inner.call(req));
        }
        let caller = match self.auth.caller_in(req.headers()) {
            Ok(c) => c,
            Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
        };
        let streamed = STREAMED_UPLOADS.contains(&path);
        let deadline = self.deadline.filter(|_| !streamed);
        let share = (!streamed).then(|| Arc::new(Share::new(&self.budget, caller.user)));
        let (mut parts, inner) = req.into_parts();
        parts.extensions.insert(caller);
        if let Some(share) = &share {
            parts.extensions.insert(Hold {
                _share: Arc::clone(share),
            });
        }
        let held = share.clone();
        let body = Counted {
            inner,
            share,
            framing: Framing::default(),
        };
        let call = self.inner.call(Request::from_parts(parts, body));
        Box::pin(async move {
            let response = match deadline {
                None => call.await,
                Some(deadline) => match tokio::time::timeout(deadline, call).await {
                    Ok(response) => response,
                    Err(_) => Ok(Status::cancelled(format!(
                        "the call was not answered within {}s",
                        deadline.as_secs()
                    ))
                    .into_http()),
                },
            };
            // The body's message is held until the call ends.
            drop(held);
            response.map(|mut r| {
                message::too_large(r.headers_mut());
                message::cap(r.headers_mut());
                r
            })
        })
    }
}

mod message;

#[cfg(test)]
mod tests;
