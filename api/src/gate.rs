//! What every call to the otc services passes before its body is read, on
//! the gRPC listener and, as gRPC-Web, on the console's ([`GateLayer`]):
//!
//! - **The caller's token.** Every `otc.v1` method needs one, so a request
//!   without a valid token is answered UNAUTHENTICATED at once, before a byte
//!   of its body (up to an attachment's 5 MiB) is read or held. The caller
//!   found rides in the request's extensions: the handler does not look the
//!   token up again ([`crate::auth::Authenticator::caller`]).
//! - **The upload budget** (`--uploads-in-flight-max`). A unary request's
//!   body is held whole until its call ends (decoded, then queued for the
//!   writer), so the bytes of all bodies past the first [`BODY_FREE_BYTES`]
//!   of each are counted, across every connection, until their calls end. A
//!   body that would take the count past the budget fails RESOURCE_EXHAUSTED
//!   naming the flag; nothing of it reaches the engine, and the client may
//!   retry. Ordinary calls stay within their free bytes, so uploads cannot
//!   crowd out trading. A client-streamed bill ([`STREAMED_UPLOADS`]) goes to
//!   disk chunk by chunk and is not counted.
//!
//! Health checks and reflection need no token and pass untouched.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tonic::Status;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{Bytes, Service};

use crate::auth::Authenticator;

/// Bytes of each request body not counted against the upload budget: more
/// than any call without an attachment sends.
pub const BODY_FREE_BYTES: u64 = 64 * 1024;

/// Methods whose request is a stream of chunks, each handled as it comes:
/// their bodies are never held whole.
pub const STREAMED_UPLOADS: &[&str] = &["/otc.v1.SupportService/ImportBill"];

/// The services that need a token.
const PROTECTED_PREFIX: &str = "/otc.v1.";

/// Bytes of request bodies held across all connections, and the most that
/// may be.
#[derive(Debug)]
pub struct UploadBudget {
    max: u64,
    held: AtomicU64,
}

impl UploadBudget {
    /// A budget of `max` bytes.
    #[must_use]
    pub fn new(max: u64) -> Self {
        Self {
            max,
            held: AtomicU64::new(0),
        }
    }

    /// Bytes held now.
    #[must_use]
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// Takes `n` bytes if they fit.
    fn take(&self, n: u64) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|after| *after <= self.max)
            })
            .is_ok()
    }

    fn give(&self, n: u64) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One call's share of the budget: what its body brought so far and what
/// of it is counted. Given back when the call ends (the last of the body
/// and the call's future drop it).
#[derive(Debug)]
struct Share {
    budget: Arc<UploadBudget>,
    seen: AtomicU64,
    taken: AtomicU64,
}

impl Share {
    /// Counts `n` more bytes of the body.
    fn count(&self, n: u64) -> Result<(), Status> {
        let seen = self.seen.fetch_add(n, Ordering::AcqRel).saturating_add(n);
        let owed = seen.saturating_sub(BODY_FREE_BYTES);
        let extra = owed.saturating_sub(self.taken.load(Ordering::Acquire));
        if extra == 0 {
            return Ok(());
        }
        if !self.budget.take(extra) {
            metrics::counter!("otc_uploads_refused_total").increment(1);
            return Err(Status::resource_exhausted(format!(
                "the server is receiving as many uploads as it holds at once \
                 ({} bytes, --uploads-in-flight-max); retry shortly",
                self.budget.max
            )));
        }
        self.taken.fetch_add(extra, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.budget.give(*self.taken.get_mut());
    }
}

/// A request body counted against the upload budget.
pub struct Counted<B> {
    inner: B,
    share: Option<Arc<Share>>,
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
                if let (Some(share), Some(data)) = (&this.share, frame.data_ref()) {
                    share.count(data.len() as u64)?;
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
    budget: Arc<UploadBudget>,
}

impl GateLayer {
    /// A gate checking tokens with `auth` and counting uploads in `budget`.
    #[must_use]
    pub fn new(auth: Arc<Authenticator>, budget: Arc<UploadBudget>) -> Self {
        Self { auth, budget }
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            auth: Arc::clone(&self.auth),
            budget: Arc::clone(&self.budget),
        }
    }
}

/// See the module comment.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    auth: Arc<Authenticator>,
    budget: Arc<UploadBudget>,
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
            let req = req.map(|inner| Counted { inner, share: None });
            return Box::pin(self.inner.call(req));
        }
        let caller = match self.auth.caller_in(req.headers()) {
            Ok(c) => c,
            Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
        };
        let share = (!STREAMED_UPLOADS.contains(&path)).then(|| {
            Arc::new(Share {
                budget: Arc::clone(&self.budget),
                seen: AtomicU64::new(0),
                taken: AtomicU64::new(0),
            })
        });
        let (mut parts, inner) = req.into_parts();
        parts.extensions.insert(caller);
        let held = share.clone();
        let req = Request::from_parts(parts, Counted { inner, share });
        let call = self.inner.call(req);
        Box::pin(async move {
            let response = call.await;
            // The body's bytes are held until the call ends.
            drop(held);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(budget: &Arc<UploadBudget>) -> Share {
        Share {
            budget: Arc::clone(budget),
            seen: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }

    #[test]
    fn bodies_past_their_free_bytes_share_the_budget_until_they_end() {
        let budget = Arc::new(UploadBudget::new(100_000));
        let a = share(&budget);
        // The free bytes are not counted.
        a.count(BODY_FREE_BYTES).expect("free");
        assert_eq!(budget.held(), 0);
        a.count(60_000).expect("fits");
        assert_eq!(budget.held(), 60_000);
        let b = share(&budget);
        b.count(BODY_FREE_BYTES + 40_000).expect("fits exactly");
        assert_eq!(budget.held(), 100_000);
        // A third body past its free bytes does not fit; one within them does.
        let c = share(&budget);
        c.count(BODY_FREE_BYTES).expect("free bytes always pass");
        let e = c.count(1).expect_err("over the budget");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("--uploads-in-flight-max"), "{e:?}");
        drop(c);
        // Calls that end give their bytes back.
        drop(a);
        assert_eq!(budget.held(), 40_000);
        drop(b);
        assert_eq!(budget.held(), 0);
        let d = share(&budget);
        d.count(BODY_FREE_BYTES + 100_000)
            .expect("the whole budget again");
    }
}
